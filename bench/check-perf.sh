#!/usr/bin/env bash
# `etcdctl check perf --load=s|m|l` against a three-member raftwood cluster
# (`raftwood dev`, release build) and a three-member etcd 3.4 cluster
# (Debian's etcd-server), one after the other, on loopback, fsync on.
#
# Usage: bench/check-perf.sh [loads...]   (default: s m l)
# RAFTWOOD_BIN=path runs that binary instead of building this tree's (to
# measure an earlier build side by side); SKIP_ETCD=1 skips the etcd half.
#
# First, each load runs against a server that does no work
# (`null_kv_server`, an example of raftwood-server): check perf's ceiling
# on this machine. Its one request producer (a token bucket with a burst of
# one) loses every token it wakes too late for, so on two shared cores
# etcdctl itself is part of what is measured. SKIP_NULL=1 skips this.
# Installs etcd-server and etcd-client with apt-get if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

loads=("${@:-s m l}")
read -r -a loads <<<"${loads[*]}"

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null
fi
systemctl stop etcd 2>/dev/null || true

raftwood_bin=${RAFTWOOD_BIN:-}
if [ -z "$raftwood_bin" ]; then
  cargo build --release -q -p raftwood
  raftwood_bin=./target/release/raftwood
fi
if [ -z "${SKIP_NULL:-}" ]; then
  cargo build --release -q -p raftwood-server --example null_kv_server
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export ETCDCTL_API=3
endpoints=http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379

wait_ready() {
  for _ in $(seq 1 100); do
    if etcdctl --endpoints="$endpoints" put check-perf-ready 1 >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "cluster did not come up" >&2
  return 1
}

# The highest store revision any member reports.
revision() {
  etcdctl --endpoints="$endpoints" endpoint status -w json 2>/dev/null |
    grep -o '"revision":[0-9]*' | cut -d: -f2 | sort -n | tail -1
}

run_loads() {
  local system=$1
  for load in "${loads[@]}"; do
    echo "== $system: etcdctl check perf --load=$load"
    local before after
    before=$(revision)
    # check perf exits non-zero when the cluster fails the load; report it.
    # etcdctl's own CPU time is reported too: it shares the two cores.
    local TIMEFORMAT='%U %S %R'
    { time { etcdctl --endpoints="$endpoints" check perf --load="$load" 2>&1 | tr '\r' '\n' |
      grep -E 'PASS|FAIL|Error|error' | tail -6 || true; }; } 2>"$work/time"
    read -r user system real <"$work/time"
    echo "etcdctl CPU: $(awk -v u="$user" -v s="$system" -v r="$real" 'BEGIN { printf "%.1f s over %.0f s, %.0f%% of one core", u + s, r, 100 * (u + s) / r }')"
    # Every put of the run took one revision (its final delete one more),
    # so the writes per second can be told even when check perf stops at
    # its clean-up (a DeleteRange that times out prints no results).
    sleep 2
    after=$(revision)
    echo "writes by revision: $((after - before)) in the 60 s run = $(((after - before) / 60)) writes/s"
    echo "machine load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
}

rss_of() { ps -o rss= -p "$1" | awk '{s+=$1} END {print s/1024 " MiB"}'; }

# The ceiling: a server that answers at once and stores nothing.
if [ -z "${SKIP_NULL:-}" ]; then
  ./target/release/examples/null_kv_server 127.0.0.1:2379 127.0.0.1:22379 127.0.0.1:32379 \
    >"$work/null.log" 2>&1 &
  null_pid=$!
  wait_ready
  run_loads "no-work server (the ceiling)"
  echo "no-work server CPU: $(awk '{ printf "%.1f s", ($14 + $15) / '"$(getconf CLK_TCK)"' }' /proc/$null_pid/stat)"
  kill $null_pid; wait $null_pid 2>/dev/null || true
fi

# raftwood
"$raftwood_bin" dev --data-dir "$work/raftwood" --log-timings-seconds 5 >"$work/raftwood.log" 2>&1 &
raftwood_pid=$!
wait_ready
run_loads raftwood
echo "raftwood (all three members, one process) RSS: $(rss_of $raftwood_pid), peak $(awk '/^VmHWM:/ { printf "%.0f MiB", $2 / 1024 }' /proc/$raftwood_pid/status)"
sleep 5 # the last timings interval
kill $raftwood_pid; wait $raftwood_pid 2>/dev/null || true
# check perf ends with one DeleteRange of everything it wrote: its apply
# time is the longest apply batch of each member.
echo "raftwood: longest apply batch of any member (ms): $(grep -o 'apply n=[0-9]* avg=[0-9.]* ms p50=[0-9.]* p99=[0-9.]* max=[0-9.]*' "$work/raftwood.log" |
  awk -F'max=' '{ if ($2 > m) m = $2 } END { print m + 0 }')"

if [ -n "${SKIP_ETCD:-}" ]; then exit 0; fi

# etcd
cluster=infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380
pids=()
for i in 1 2 3; do
  client=$([ $i = 1 ] && echo 2379 || echo "${i}2379")
  etcd --name infra$i --data-dir "$work/etcd$i" \
    --listen-client-urls http://127.0.0.1:$client --advertise-client-urls http://127.0.0.1:$client \
    --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
    --initial-cluster-token check-perf --initial-cluster "$cluster" --initial-cluster-state new \
    >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
wait_ready
run_loads "etcd $(etcd --version | head -1 | awk '{print $3}')"
echo "etcd RSS per member: $(for p in "${pids[@]}"; do rss_of "$p"; done | tr '\n' ' ')"
kill "${pids[@]}"; wait 2>/dev/null || true
