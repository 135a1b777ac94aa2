#!/usr/bin/env bash
# Benchmark of `exhunt probe` (issue #6), side by side with the reference in one run:
#
#   bench/probe.sh [CONCURRENCY] [COUNTS...]      (defaults: 64, 1000 10000)
#
# The mock Exchange server (tools/mock-exchange, release build) serves COUNT TLS sites on
# consecutive loopback addresses from 127.10.0.1, one port, six builds in turn. For each COUNT,
# on the same sites in the same run:
#   exhunt probe @targets --rate 0 --per-host-rate 0 -c CONCURRENCY -f jsonl (version checks:
#     one TLS connection and one GET of the OWA logon page per target when X-OWA-Version answers)
#   xargs -P CONCURRENCY curl -sk -D - -o /dev/null https://ADDR:PORT/owa/auth/logon.aspx
#     (the same version request, one curl process per target)
# Reports targets per second, the ratio, exhunt's peak RSS (GNU time), and checks that both read
# every build. Target on 2 cores: >= 2,000 TLS targets/s, RSS flat from 1,000 to 10,000.
# Loopback only; the mock refuses any other address.
set -euo pipefail
C=${1:-64}
shift || true
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1000 10000)
cd "$(dirname "$0")/.."
OUT=bench/out/probe
mkdir -p "$OUT"
cargo build -q --release -p exhunt -p mock-exchange
command -v curl >/dev/null || { echo "bench/probe.sh needs curl"; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PORT=19443
printf '%-8s %-12s %10s %10s %8s %12s %12s\n' targets tool seconds targets/s ratio peak_RSS_MiB builds_read
for N in "${COUNTS[@]}"; do
  python3 - "$N" "$PORT" > "$OUT/targets-$N.txt" <<'PY'
import ipaddress, sys
n, port = int(sys.argv[1]), sys.argv[2]
first = int(ipaddress.IPv4Address("127.10.0.1"))
for i in range(n):
    print(f"{ipaddress.IPv4Address(first + i)}:{port}")
PY
  # The mock runs until its stdin closes.
  coproc MOCK { exec target/release/mock-exchange 127.10.0.1 "$N" "$PORT" 1; }
  mock_pid=$MOCK_PID
  mock_in=${MOCK[1]}
  read -r ready <&"${MOCK[0]}"
  [ "${ready%% *}" = ready ] || { echo "mock did not start: $ready"; exit 1; }
  /usr/bin/time -f "%e %M" -o "$OUT/time" target/release/exhunt probe "@$OUT/targets-$N.txt" \
    --no-dns --retries 0 --rate 0 --per-host-rate 0 -c "$C" -f jsonl -o "$OUT/exhunt-$N.jsonl" \
    --allow-large > /dev/null 2>&1 || true
  read -r ex_s ex_kb < <(tail -1 "$OUT/time")
  ex_builds=$(grep -c '"build":"' "$OUT/exhunt-$N.jsonl" || true)
  start=$(date +%s.%N)
  sed 's|^|https://|; s|$|/owa/auth/logon.aspx|' "$OUT/targets-$N.txt" \
    | xargs -P "$C" -n 1 curl -sk --max-time 10 -D - -o /dev/null > "$OUT/curl-$N.txt" 2>/dev/null || true
  end=$(date +%s.%N)
  cu_s=$(echo "$end - $start" | bc)
  cu_builds=$(grep -ci '^x-owa-version:' "$OUT/curl-$N.txt" || true)
  eval "exec ${mock_in}>&-"
  wait "$mock_pid" 2>/dev/null || true
  ex_rate=$(echo "scale=0; $N / $ex_s" | bc)
  cu_rate=$(echo "scale=0; $N / $cu_s" | bc)
  ratio=$(echo "scale=2; $ex_rate / $cu_rate" | bc)
  printf '%-8s %-12s %10.2f %10s %8s %12s %12s\n' "$N" exhunt "$ex_s" "$ex_rate" "$ratio" "$((ex_kb / 1024))" "$ex_builds"
  printf '%-8s %-12s %10.2f %10s %8s %12s %12s\n' "$N" curl+xargs "$cu_s" "$cu_rate" 1.00 - "$cu_builds"
done
echo "(ratio: exhunt targets/s over curl targets/s; concurrency $C for both; $(nproc) cores)"
