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
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(exchange_csv w3c zip_inventory ioc_feed evtx event_json sigma_rule event_export http_response probe_target)
export RUSTC_BOOTSTRAP=1
# Seeds: real EVTX samples for the EVTX target, the SigmaHQ rules for the rule loader (when
# ../shared/data is there), the built-in rules otherwise.
seed() {
  local t=$1
  mkdir -p "corpus/$t"
  case $t in
    evtx) find ../../shared/data -name '*.evtx' -size -200k -exec cp -n {} "corpus/$t/" \; 2>/dev/null ;;
    sigma_rule) cp -n ../rules/sigma/*.yml "corpus/$t/"
                find ../../shared/data/SigmaHQ_sigma -name '*.yml' -exec cp -n {} "corpus/$t/" \; 2>/dev/null ;;
  esac
  true
}
for t in "${TARGETS[@]}"; do
  seed "$t"
  log=$(mktemp)
  extra=()
  [ "$t" = evtx ] && extra=(-max_len=262144)
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 "${extra[@]}" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: ${execs:-?} executions in ${SECS}s, exit $rc, artifacts: $crashes"
  [ "$rc" -eq 0 ] || tail -30 "$log"
  rm -f "$log"
done
