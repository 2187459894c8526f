#!/usr/bin/env bash
# The longest apply batches of a put load: a fresh `raftwood dev` with the
# members' stage timings every 2 s, 200,000 puts from 100 clients (enough
# for one snapshot per member at the default --snapshot-count), then the
# client's latency summary and the three largest `apply ... max=` values
# any member logged.
#
# Usage: bench/apply-stalls.sh [raftwood-binary]   (default target/release/raftwood)
# Ports: CLIENT_PORTS / PEER_PORTS as in bench/lib/dev-cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib/dev-cluster.sh
. bench/lib/dev-cluster.sh
bin=$(realpath "${1:-target/release/raftwood}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_dev "$bin" "$work/data" "$work/dev.log" --log-timings-seconds 2
pid=$dev_pid
wait_put_ready "$bin"
"$bin" bench --endpoints="$endpoints" --target-leader --clients=100 --conns=10 --no-progress \
  "${put[@]}" --total=200000 | grep -E "throughput|avg|p99|max" | tr -s ' ' | tr '\n' ' '
echo
sleep 3 # one more timings interval
kill -INT "$pid"; wait "$pid" 2>/dev/null || true
echo "longest apply batches (ms): $(grep -o 'apply n=[0-9]* avg=[0-9.]* ms p50=[0-9.]* p99=[0-9.]* max=[0-9.]*' "$work/dev.log" |
  awk -F'max=' '{ print $2 }' | sort -n | tail -3 | tr '\n' ' ')"
