#!/bin/bash
cd /work/main/bench
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg) $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -4 | tr '\n' ' ')"; sleep 10; done ) > results/load-3m.log &
LOADPID=$!
rm -rf /work/bench-data/run3m
/usr/bin/time -v ./target/release/lsm-bench --num 3000000 --engines raftwood,fjall --repeat 2 --dir /work/bench-data/run3m --json results/3m.json > results/3m.txt 2> results/3m.progress
kill $LOADPID
echo ALLDONE >> results/3m.progress
