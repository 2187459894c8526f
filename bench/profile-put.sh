#!/usr/bin/env bash
# Where a put's time goes in raftwood: a flame graph of the whole
# `raftwood dev` process (three members) under `put, 100 clients`, and the
# members' own stage timings (`--log-timings-seconds`) for the same run.
#
# Usage: bench/profile-put.sh [-o flamegraph.svg] [-t total] [-f folded]
#   -o file   the flame graph (default docs/img/flame-put-100-clients.svg)
#   -t total  puts in the profiled run (default 120000)
#   -f file   also keep the folded stacks (one line per stack, for grep)
# Ports: CLIENT_PORTS (default 2479,22479,32479), PEER_PORTS (default
# 12480,22480,32480).
#
# Needs: perf (Debian package linux-perf, installed if missing) and
# inferno's flamegraph tools (`cargo install inferno`, done if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/img/flame-put-100-clients.svg
total=120000
folded=
while getopts "o:t:f:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    t) total=$OPTARG ;;
    f) folded=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done

command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
command -v inferno-flamegraph >/dev/null || cargo install -q --locked inferno

# shellcheck source=bench/lib/dev-cluster.sh
. bench/lib/dev-cluster.sh

cargo build --release -q -p raftwood
bin=$PWD/target/release/raftwood
work=$(mktemp -d -p "$PWD/target" profile-put.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

start_dev "$bin" "$work/data" "$work/raftwood.log" --log-timings-seconds 5
pid=$dev_pid
wait_put_ready "$bin"
# Warm up (leader elected, memtables and caches filled), then profile the
# middle of a run: perf starts 2 s in and records 8 s.
"$bin" bench --endpoints="$endpoints" --target-leader --clients=100 --conns=10 --no-progress \
  "${put[@]}" --total=20000 >/dev/null
(sleep 2; perf record -F 250 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 8 \
  >/dev/null 2>&1) &
profiler=$!
"$bin" bench --endpoints="$endpoints" --target-leader --clients=100 --conns=10 --no-progress \
  "${put[@]}" --total="$total"
wait "$profiler"
sleep 5 # one more timings interval
kill -INT "$pid"; wait "$pid" || true

mkdir -p "$(dirname "$out")"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
[ -z "$folded" ] || cp "$work/folded" "$folded"
inferno-flamegraph --minwidth 0.2 \
  --title "raftwood dev (3 members, 1 process): put, 100 clients, $(git rev-parse --short HEAD)" \
  <"$work/folded" >"$out"
echo
echo "CPU by thread (share of samples):"
perf report -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
  awk '/%/ && !/^#/ { print "  " $0 }' | head -12
echo
echo "Stage timings (each member, every 5 s; propose->commit only on the leader):"
grep 'raftwood::timings' "$work/raftwood.log" | sed -E 's/^.*timings over/  timings over/' || true
echo
echo "(flame graph written to $out)"
