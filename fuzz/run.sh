#!/usr/bin/env bash
# Runs every fuzz target of the project — fuzz/ (peer, raft, log, client
# and state-machine decoders) and crates/raftwood-lsm/fuzz/ (the engine's
# on-disk formats) — for SECONDS each (default 60), from the checked-in
# seeds (fuzz/seeds/<target>/) and the local corpus (<dir>/corpus/<target>/,
# ignored by git). A crash, a leak, a timeout or an out-of-memory fails the
# run and leaves the input in <dir>/artifacts/<target>/. Prints one line per
# target: the executions, the coverage and the corpus size libFuzzer
# reports.
#
#   fuzz/run.sh 600                 # ten minutes a target
#   fuzz/run.sh 60 peer_frame       # one target
#
# Needs a nightly toolchain (cargo-fuzz builds with AddressSanitizer) and
# cargo-fuzz, which this script installs if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
only=${2:-}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz/run.sh: fuzzing needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

summary=()
for dir in fuzz crates/raftwood-lsm/fuzz; do
  for target in $(cd "$dir" && cargo +nightly fuzz list); do
    if [[ -n "$only" && "$target" != "$only" ]]; then
      continue
    fi
    corpus="$root/$dir/corpus/$target"
    seeds="$root/fuzz/seeds/$target"
    mkdir -p "$corpus" "$seeds"
    log=$(mktemp)
    echo "== $dir: $target, ${seconds} s"
    if ! (cd "$dir" && cargo +nightly fuzz run "$target" "$corpus" "$seeds" -- \
          -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) \
          >"$log" 2>&1; then
      tail -n 60 "$log" >&2
      echo "fuzz/run.sh: $target failed; the input is in $dir/artifacts/$target/" >&2
      exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    done_line=$(grep -E '#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    summary+=("$target: $runs runs; ${done_line#*DONE }")
    rm -f "$log"
  done
done
printf '%s\n' "${summary[@]}"
