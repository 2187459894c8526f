#!/usr/bin/env bash
# raftwood against etcd 3.4, whole system, side by side on one machine.
#
# For each round, a three-member raftwood cluster (`raftwood dev`, release
# build) and a three-member etcd cluster (Debian's etcd-server) are started
# in turn on the same loopback ports, never both at once, each with fsync
# on and a fresh data directory on the same disk, and the same load tool
# (`raftwood bench`, which speaks etcd's v3 gRPC API) runs the workloads of
# issue 7 against each. The order of the two systems alternates from round
# to round. The disk's synchronous-write latency is measured here too,
# since it is the floor of every durable write.
#
# Each round also runs the workloads (all but watch) against a server that
# does no work (`null_kv_server`, an example of raftwood-server: gRPC in,
# an empty answer out) on the same ports: the ceiling of this load tool on
# this machine. A ratio to etcd is only reachable below it.
#
# Usage: bench/compare-etcd.sh [-r rounds] [-s scale] [-o file]
#   -r rounds  rounds per system (default 3)
#   -s scale   multiplies every --total (default 1; 0.2 for a quick run)
#   -o file    where the Markdown table goes as well as stdout
#              (default target/compare-etcd/results.md)
#   -p file    where the plot goes (default docs/img/compare-etcd.svg)
# Ports: CLIENT_PORTS (default 2379,22379,32379) and PEER_PORTS
# (default 12380,22380,32380); they must be free.
#
# Needs: cargo, etcd and etcdctl (installed with apt-get if missing),
# python3 (for the medians).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
scale=1
out=target/compare-etcd/results.md
svg=docs/img/compare-etcd.svg
while getopts "r:s:o:p:h" opt; do
  case $opt in
    r) rounds=$OPTARG ;;
    s) scale=$OPTARG ;;
    o) out=$OPTARG ;;
    p) svg=$OPTARG ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
  esac
done
command_line="bench/compare-etcd.sh $*"

IFS=, read -r -a client_ports <<<"${CLIENT_PORTS:-2379,22379,32379}"
IFS=, read -r -a peer_ports <<<"${PEER_PORTS:-12380,22380,32380}"
endpoints=$(printf 'http://127.0.0.1:%s,' "${client_ports[@]}")
endpoints=${endpoints%,}

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null
  fi
fi
# Debian's package starts an etcd on 2379 where systemd runs.
systemctl stop etcd 2>/dev/null || true
command -v python3 >/dev/null || { echo "python3 is needed for the summary" >&2; exit 1; }

for port in "${client_ports[@]}" "${peer_ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; stop what listens there or set CLIENT_PORTS/PEER_PORTS" >&2
    exit 1
  fi
done

cargo build --release -q -p raftwood
cargo build --release -q -p raftwood-server --example null_kv_server
bin=$PWD/target/release/raftwood
null_bin=$PWD/target/release/examples/null_kv_server
# On the disk, not a tmpfs: fsync must cost what it costs.
work=$(mktemp -d -p "$PWD/target" compare-etcd.XXXXXX)
results=$work/results
mkdir -p "$results" "$(dirname "$out")" "$(dirname "$svg")"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
export ETCDCTL_API=3

total() { awk -v n="$1" -v s="$scale" 'BEGIN { t = int(n * s); if (t < 1) t = 1; print t }'; }

# name|global flags and subcommand. 8-byte keys, 256-byte values over
# 100,000 keys for puts; ranges read one existing key. Writes go to the
# leader (as etcd's own benchmark guide does); reads to every member.
put_flags="put --key-size=8 --val-size=256 --key-space-size=100000"
workloads=(
  "put, 1 client|--target-leader --clients=1 --conns=1 $put_flags --total=$(total 3000)"
  "put, 100 clients|--target-leader --clients=100 --conns=10 $put_flags --total=$(total 40000)"
  "put, 1000 clients|--target-leader --clients=1000 --conns=100 $put_flags --total=$(total 50000)"
  "range l, 1 client|--clients=1 --conns=1 range foo --consistency=l --total=$(total 10000)"
  "range l, 100 clients|--clients=100 --conns=10 range foo --consistency=l --total=$(total 100000)"
  "range s, 1 client|--clients=1 --conns=1 range foo --consistency=s --total=$(total 20000)"
  "range s, 100 clients|--clients=100 --conns=10 range foo --consistency=s --total=$(total 100000)"
  # 100 watchers of one key, 100 puts/s: req/s counts events delivered,
  # latency is put sent -> event received at each watcher.
  "watch, 100 watchers|--clients=100 --conns=10 watch-latency --put-total=$(total 1000) --put-rate=100"
)

# Microseconds per 4 KiB O_DSYNC write (a write plus fdatasync), in place
# in a preallocated file as a write-ahead log's segment is written: the
# median of five batches of 100 writes, with the fastest and slowest batch
# (a shared virtual disk varies a lot).
fdatasync_us() {
  local file=$work/dsync-probe count=100 start end batches=()
  dd if=/dev/zero of="$file" bs=4096 count=$count 2>/dev/null
  sync "$file"
  for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    dd if=/dev/zero of="$file" bs=4096 count=$count oflag=dsync conv=notrunc 2>/dev/null
    end=$(date +%s%N)
    batches+=($(((end - start) / count / 1000)))
  done
  rm -f "$file"
  printf '%s\n' "${batches[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%d us (batches %d to %d us)", v[3], v[1], v[5] }'
}

wait_ready() {
  for _ in $(seq 1 150); do
    if etcdctl --endpoints="$endpoints" --command-timeout=2s put bench-ready 1 >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "cluster did not come up" >&2
  return 1
}

# Peak resident memory (VmHWM) of the given processes, in MiB, summed.
peak_rss_mib() {
  local kib=0 pid
  for pid in "$@"; do
    kib=$((kib + $(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")))
  done
  echo $((kib / 1024))
}

# CPU time (user + system, clock ticks) the given processes have used.
cpu_ticks() {
  local ticks=0 pid
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$ticks"
}

# run_workloads system round server-pids...: the server's CPU time during
# each workload goes beside its report (.cpu: seconds), so CPU per request
# can be compared — on two shared cores it is what bounds throughput.
run_workloads() {
  local system=$1 round=$2 entry name args i=0 before after
  shift 2
  etcdctl --endpoints="$endpoints" put foo "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
  for entry in "${workloads[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    i=$((i + 1))
    # The null server has no Watch service.
    if [ "$system" = null ] && [[ $name == watch* ]]; then continue; fi
    echo "   $system round $round: $name" >&2
    before=$(cpu_ticks "$@")
    # shellcheck disable=SC2086 # args are words on purpose
    if ! "$bin" bench --endpoints="$endpoints" --json --no-progress $args \
      >"$results/$system.$round.$i.json" 2>"$results/$system.$round.$i.err"; then
      echo "   failed: $(tail -1 "$results/$system.$round.$i.err")" >&2
      rm -f "$results/$system.$round.$i.json"
    fi
    after=$(cpu_ticks "$@")
    awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }' \
      >"$results/$system.$round.$i.cpu"
  done
}

run_raftwood() {
  local round=$1 pid
  cut -d' ' -f1 /proc/loadavg >"$results/raftwood.$round.load"
  "$bin" dev --data-dir "$work/raftwood-$round" \
    --client-ports "$(IFS=,; echo "${client_ports[*]}")" \
    --peer-ports "$(IFS=,; echo "${peer_ports[*]}")" >"$work/raftwood-$round.log" 2>&1 &
  pid=$!
  wait_ready
  run_workloads raftwood "$round" "$pid"
  # One process holds all three members.
  peak_rss_mib "$pid" >"$results/raftwood.$round.rss"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work/raftwood-$round"
}

run_null() {
  local round=$1 pid
  "$null_bin" $(printf '127.0.0.1:%s ' "${client_ports[@]}") >"$work/null-$round.log" 2>&1 &
  pid=$!
  wait_ready
  run_workloads null "$round" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_etcd() {
  local round=$1 i cluster="" pids=()
  cut -d' ' -f1 /proc/loadavg >"$results/etcd.$round.load"
  for i in 0 1 2; do
    cluster+="infra$i=http://127.0.0.1:${peer_ports[$i]},"
  done
  for i in 0 1 2; do
    etcd --name "infra$i" --data-dir "$work/etcd-$round-$i" \
      --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
      --initial-cluster-token compare-etcd --initial-cluster "${cluster%,}" \
      --initial-cluster-state new >"$work/etcd-$round-$i.log" 2>&1 &
    pids+=($!)
  done
  wait_ready
  run_workloads etcd "$round" "${pids[@]}"
  peak_rss_mib "${pids[@]}" >"$results/etcd.$round.rss"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"/etcd-"$round"-*
}

fdatasync_before=$(fdatasync_us)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "fdatasync (4 KiB O_DSYNC write): ${fdatasync_before}; load average: $load_before" >&2
for round in $(seq 1 "$rounds"); do
  if ((round % 2 == 1)); then
    run_raftwood "$round"; run_etcd "$round"
  else
    run_etcd "$round"; run_raftwood "$round"
  fi
  run_null "$round"
done
fdatasync_after=$(fdatasync_us)

names=$(printf '%s\n' "${workloads[@]}" | cut -d'|' -f1)
python3 - "$results" "$rounds" "$svg" <<PYTHON >"$out"
import json, math, os, statistics, sys
results, rounds, svg_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = """$names""".strip().split("\n")
systems = ["raftwood", "etcd"]

def load(system, round_, i):
    path = os.path.join(results, f"{system}.{round_}.{i}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"

def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"

def server_cpu_us(system, round_, i, report):
    """Server CPU per successful request, in microseconds."""
    try:
        with open(os.path.join(results, f"{system}.{round_}.{i}.cpu")) as f:
            seconds = float(f.read().strip())
    except (OSError, ValueError):
        return None
    if report is None or not report["count"]:
        return None
    return seconds * 1e6 / report["count"]

print("| workload | raftwood req/s | etcd req/s | ratio | raftwood avg ms | etcd avg ms | ratio | raftwood p99 ms | etcd p99 ms | ratio | server CPU µs/req (r/e) | errors (r/e) | bench CPU % of a core (r/e) | no-work ceiling req/s | ceiling / etcd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
spread = []
chart = []
for i, name in enumerate(names, start=1):
    row = {}
    for system in systems:
        reports = [load(system, r, i) for r in range(1, rounds + 1)]
        ok = [r for r in reports if r is not None]
        row[system] = {
            "rps": median([r["requests_per_second"] for r in ok]),
            "avg": median([r["latency_ms"]["avg"] for r in ok]),
            "p99": median([r["latency_ms"]["p99"] for r in ok]),
            "errors": sum(r["error_count"] for r in ok),
            "failed_runs": len(reports) - len(ok),
            "cpu": median([(r.get("client_cpu") or {}).get("percent_of_one_core") for r in ok]),
            "server_us": median([server_cpu_us(system, k, i, r) for k, r in enumerate(reports, start=1)]),
            "all_rps": [None if r is None else r["requests_per_second"] for r in reports],
        }
    ceiling = median([None if r is None else r["requests_per_second"]
                      for r in (load("null", k, i) for k in range(1, rounds + 1))])
    r, e = row["raftwood"], row["etcd"]
    errors = f"{r['errors']}/{e['errors']}"
    if r["failed_runs"] or e["failed_runs"]:
        errors += f" ({r['failed_runs']}/{e['failed_runs']} runs failed)"
    print(f"| {name} | {fmt(r['rps'], 0)} | {fmt(e['rps'], 0)} | {ratio(r['rps'], e['rps'])} "
          f"| {fmt(r['avg'], 2)} | {fmt(e['avg'], 2)} | {ratio(r['avg'], e['avg'])} "
          f"| {fmt(r['p99'], 2)} | {fmt(e['p99'], 2)} | {ratio(r['p99'], e['p99'])} "
          f"| {fmt(r['server_us'], 0)}/{fmt(e['server_us'], 0)} "
          f"| {errors} | {fmt(r['cpu'], 0)}/{fmt(e['cpu'], 0)} "
          f"| {fmt(ceiling, 0)} | {ratio(ceiling, e['rps'])} |")
    spread.append((name, r["all_rps"], e["all_rps"]))
    chart.append((name, r["rps"], e["rps"], r["avg"], e["avg"]))

print()
print("Throughput (req/s) of each round, raftwood then etcd:")
print()
print("| workload | raftwood, rounds 1.." + str(rounds) + " | etcd, rounds 1.." + str(rounds) + " |")
print("|---|---|---|")
for name, r, e in spread:
    print(f"| {name} | {' / '.join(fmt(v, 0) for v in r)} | {' / '.join(fmt(v, 0) for v in e)} |")

def read(system, kind):
    values = []
    for round_ in range(1, rounds + 1):
        try:
            with open(os.path.join(results, f"{system}.{round_}.{kind}")) as f:
                values.append(f.read().strip())
        except OSError:
            values.append("–")
    return ", ".join(values)

print()
print(f"Peak RSS (MiB, per round): raftwood (one process, three members) {read('raftwood', 'rss')}; "
      f"etcd (three processes, summed) {read('etcd', 'rss')}.")
print(f"1-minute load average when each system started, per round: raftwood {read('raftwood', 'load')}; "
      f"etcd {read('etcd', 'load')}.")

# The plot: median throughput (linear) and average latency (log scale),
# one pair of bars per workload. Plain SVG, no plotting library needed.
colors = {"raftwood": "#2b7a3d", "etcd": "#4a6fa5"}
bar, gap, label_w, panel_w = 11, 10, 150, 330
row_h = 2 * bar + gap
height = 60 + row_h * len(chart) + 40
width = label_w + 2 * (panel_w + 90) + 20
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         '<text x="10" y="18" font-size="13">raftwood vs etcd 3.4, three members on loopback, '
         f'medians of {rounds} rounds</text>']
def panel(x0, title, index, transform, unit):
    values = [v for row in chart for v in (row[index], row[index + 1]) if v]
    top = max((transform(v) for v in values), default=1) or 1
    low = min((transform(v) for v in values), default=0)
    low = min(low, 0)
    parts.append(f'<text x="{x0}" y="42" font-weight="bold">{title}</text>')
    for k, row in enumerate(chart):
        y = 52 + k * row_h
        for j, system in enumerate(("raftwood", "etcd")):
            v = row[index + j]
            if not v:
                continue
            w = max(1.0, panel_w * (transform(v) - low) / (top - low))
            yy = y + j * bar
            parts.append(f'<rect x="{x0}" y="{yy}" width="{w:.1f}" height="{bar - 1}" fill="{colors[system]}"/>')
            parts.append(f'<text x="{x0 + w + 3:.1f}" y="{yy + bar - 2}">{v:,.{0 if v >= 100 else 2}f}{unit}</text>')
for k, row in enumerate(chart):
    parts.append(f'<text x="10" y="{52 + k * row_h + bar + 4}">{row[0]}</text>')
panel(label_w, "throughput, requests/s", 1, lambda v: v, "")
panel(label_w + panel_w + 90, "average latency, ms (log scale)", 3,
      lambda v: math.log10(v * 100), " ms")
legend_y = height - 20
for j, system in enumerate(("raftwood", "etcd")):
    parts.append(f'<rect x="{label_w + j * 100}" y="{legend_y - 9}" width="10" height="10" fill="{colors[system]}"/>')
    parts.append(f'<text x="{label_w + j * 100 + 14}" y="{legend_y}">{system}</text>')
parts.append("</svg>")
with open(svg_path, "w") as f:
    f.write("\n".join(parts) + "\n")
PYTHON

{
  echo
  echo "Command: \`$command_line\` ($rounds rounds, scale $scale); medians of the rounds; ratio = raftwood / etcd."
  dirty=$(git status --porcelain -- crates Cargo.toml Cargo.lock | awk '{ print $2 }' | cut -d/ -f1-2 | sort -u | tr '\n' ' ')
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); raftwood $(git rev-parse --short HEAD)${dirty:+ plus uncommitted changes in ${dirty% }}; $(etcd --version | head -1)."
  echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)."
  echo "Disk: a 4 KiB O_DSYNC write (write + fdatasync) took ${fdatasync_before} before the runs and ${fdatasync_after} after."
  echo "Load average at the start: $load_before."
} >>"$out"
cat "$out"
echo "(written to $out; the plot to $svg)" >&2
