#!/bin/bash
cd /work/main/bench
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg) $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -4 | tr '\n' ' ')"; sleep 10; done ) > results/load-1m.log &
LOADPID=$!
rm -rf /work/bench-data/run1m
/usr/bin/time -v ./target/release/lsm-bench --num 1000000 --repeat 3 --engines raftwood,fjall,sled --dir /work/bench-data/run1m --json results/1m.json > results/1m.txt 2> results/1m.progress
kill $LOADPID
echo ALLDONE >> results/1m.progress
