#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and reports executions and crashes.
#   fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the sanitizer flags are
# enabled with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/<target>/; minimise them with
# `cargo fuzz tmin`, fix, and add the input as a regression test of the reader it broke.
set -uo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(exchange_csv w3c zip_inventory ioc_feed)
export RUSTC_BOOTSTRAP=1
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: ${execs:-?} executions in ${SECS}s, exit $rc, artifacts: $crashes"
  [ "$rc" -eq 0 ] || tail -30 "$log"
  rm -f "$log"
done
