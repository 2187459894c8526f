#!/usr/bin/env bash
# A/B test of two raftwood builds under a put load (100 clients by default): each round starts
# a fresh `raftwood dev` (three members, one process) from binary A, then from
# binary B, warms it up, and runs the same put workload. Prints each run's
# throughput, average latency and the server's CPU time per put (user +
# system of the dev process over the measured run), then the medians.
#
# CPU per put is the figure to compare: on two shared cores throughput
# swings with whatever else runs, while the CPU a put costs moves less.
#
# Usage: bench/ab-put.sh [-r rounds] [-t total] [-c clients] binary-a binary-b
#   -r rounds   alternating rounds (default 5)
#   -t total    puts in each measured run (default 60000)
#   -c clients  concurrent clients (default 100, over 10 connections; 1
#               client uses 1 connection: the latency workload)
# Ports: CLIENT_PORTS (default 2479,22479,32479), PEER_PORTS (default
# 12480,22480,32480). KEY_SPACE_SIZE (default 100000) is the puts'
# --key-space-size: 100000000 makes nearly every put a create. The load
# tool is binary A's `raftwood bench`.
set -euo pipefail

rounds=5
total=60000
clients=100
while getopts "r:t:c:h" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    t) total=$OPTARG ;;
    c) clients=$OPTARG ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
conns=$(( clients >= 10 ? 10 : 1 ))
[ $# -eq 2 ] || { sed -n '2,20p' "$0"; exit 2; }
binaries=("$(realpath "$1")" "$(realpath "$2")")
for b in "${binaries[@]}"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done

# shellcheck source=bench/lib/dev-cluster.sh
. "$(dirname "$0")/lib/dev-cluster.sh"
bench=${binaries[0]}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
hz=$(getconf CLK_TCK)

run() { # run label binary: prints "label throughput cpu_us_per_put"
  local label=$1 bin=$2 pid before after json
  start_dev "$bin" "$work/data" "$work/dev.log"
  pid=$dev_pid
  wait_put_ready "$bench"
  "$bench" bench --endpoints="$endpoints" --target-leader --clients=100 --conns=10 --no-progress \
    "${put[@]}" --total=20000 >/dev/null
  before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  json=$("$bench" bench --endpoints="$endpoints" --target-leader --clients="$clients" \
    --conns="$conns" --no-progress --json "${put[@]}" --total="$total")
  after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work/data"
  python3 -c '
import json, sys
report = json.loads(sys.argv[1])
ticks, hz, total = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(sys.argv[5], round(report["requests_per_second"]), round(ticks / hz / total * 1e6, 1),
      round(report["latency_ms"]["avg"], 3))
' "$json" "$((after - before))" "$hz" "$total" "$label"
}

results=$work/results
for round in $(seq 1 "$rounds"); do
  run A "${binaries[0]}" | tee -a "$results"
  run B "${binaries[1]}" | tee -a "$results"
done
python3 - "$results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for label in ("A", "B"):
    mine = [r for r in rows if r[0] == label]
    print(f"{label}: median {statistics.median(float(r[1]) for r in mine):.0f} puts/s, "
          f"median {statistics.median(float(r[2]) for r in mine):.1f} us CPU per put, "
          f"median {statistics.median(float(r[3]) for r in mine):.3f} ms average latency")
EOF
