#!/bin/bash
cd /work/main/bench
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg) $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -4 | tr '\n' ' ')"; sleep 10; done ) > results/load-10m.log &
LOADPID=$!
rm -rf /work/bench-data/run10m
/usr/bin/time -v ./target/release/lsm-bench --num 10000000 --reads 200000 --repeat 1 --engines raftwood,fjall --dir /work/bench-data/run10m --json results/10m.json > results/10m.txt 2> results/10m.progress
kill $LOADPID
rm -rf /work/bench-data/run10m
echo ALLDONE >> results/10m.progress
