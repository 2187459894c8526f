#!/bin/bash
# Usage: results/run-with-load.sh NAME lsm-bench-args...
# Runs lsm-bench (or $LSM_BENCH, e.g. a build with --features rocksdb) from bench/ with the given arguments, writing
# results/NAME.txt (report), results/NAME.json, results/NAME.progress
# (progress lines and `time -v`) and results/load-NAME.log (load every 10 s).
set -u
name=$1
shift
cd /work/main/bench
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg) $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -4 | tr '\n' ' ')"; sleep 10; done ) > "results/load-$name.log" &
LOADPID=$!
echo "commit $(git -C /work/main rev-parse --short HEAD), started $(date -u +'%F %T') UTC: lsm-bench $*" > "results/$name.progress"
/usr/bin/time -v "${LSM_BENCH:-./target/release/lsm-bench}" "$@" --json "results/$name.json" > "results/$name.txt" 2>> "results/$name.progress"
kill $LOADPID
echo "finished $(date -u +'%F %T') UTC" >> "results/$name.progress"
echo ALLDONE >> "results/$name.progress"
