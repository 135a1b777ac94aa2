#!/usr/bin/env bash
# PostgreSQL plans under statistics that predate an upload (issue 18, migration 14).
#
#   bench/pg-stale.sh [ROUNDS [ORGS SERVERS ROWS SCANS]]     (default 4; 6000 25000 100000 1000)
#
# The benchmark's tenth-size fleet, loaded ROUNDS times into new databases of one cluster whose
# autovacuum wakes every second (autovacuum_naptime = 1): the statistics of the new tables are
# then taken at random moments between and during the uploads, as on a busy server. Each round:
# organisations (bulk SQL), scan results, then the probe rows through the HTTP upload; the
# probe rows' time is printed, and the statements of 200 ms or more (their plans are in the
# server log, kept while the script runs). Measured (2026-12-01, 4 rounds): the build of
# migration 13 took 4.9, 4.9, 18.0 and 18.1 s; migration 14's 3.8, 3.8, 3.8 and 3.7 s.
set -euo pipefail
ROUNDS=${1:-4}
ORGS=${2:-6000}
SERVERS=${3:-25000}
ROWS=${4:-100000}
SCANS=${5:-1000}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh" pg-stale
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" gen "$work/fleet" "$ORGS" "$SERVERS" "$ROWS" "$SCANS" >/dev/null 2>&1
# The scans and the probe rows are uploaded in two steps (serve-bench upload sends a folder's
# scans.jsonl, then its probe-*.jsonl).
mkdir -p "$work/scans" "$work/probes"
cp "$work/fleet/scans.jsonl" "$work/scans/"
mv "$work/fleet"/probe-*.jsonl "$work/probes/"
: >"$work/probes/scans.jsonl"

mkdir -p "$work/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -U exhunt -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/server.log" -o "-k $work/pg -c listen_addresses= -c autovacuum_naptime=1 -c log_min_duration_statement=200 -c log_parameter_max_length=0 -c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=200 -c auto_explain.log_nested_statements=on" start >/dev/null
psql -X -q -h "$work/pg" -U exhunt -d postgres -c "CREATE ROLE exhunt_app LOGIN NOSUPERUSER"
for i in $(seq 1 "$ROUNDS"); do
  psql -X -q -h "$work/pg" -U exhunt -d postgres -c "CREATE DATABASE r$i OWNER exhunt_app"
  db="postgres:///r$i?host=$work/pg&user=exhunt_app"
  "$bin" serve "$db" 127.0.0.1:0 >"$work/serve-$i.log" 2>"$work/serve-$i.err" &
  pid=$!
  for _ in $(seq 1 300); do grep -q '^listening' "$work/serve-$i.log" && break; sleep 0.2; done
  url=$(awk '/^listening/{print $3}' "$work/serve-$i.log")
  token=$(awk '/^token/{print $2}' "$work/serve-$i.log")
  "$bin" orgs "$db" "$work/fleet" >/dev/null 2>&1
  "$bin" upload "$url" "$token" "$work/scans" >/dev/null 2>&1
  echo "round $i: $("$bin" upload "$url" "$token" "$work/probes" 2>/dev/null | grep '^probe')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
done
echo "== statements of 200 ms or more (server log), by the first words of their text"
grep -E "duration: [0-9.]+ ms  (execute|statement)" "$work/pg/server.log" \
  | sed -E 's/.*duration: ([0-9.]+) ms  [^:]*: (.{0,50}).*/\1 \2/' \
  | awk '{k=$2" "$3" "$4; n[k]++; t[k]+=$1} END {for (k in n) printf "  %6d ms in %3d: %s\n", t[k], n[k], k}' \
  | sort -rn | head -10
