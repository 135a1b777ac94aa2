#!/usr/bin/env bash
# The fleet server's scale benchmark (issue 18), SQLite and PostgreSQL side by side.
#
#   bench/serve.sh [ORGS SERVERS ROWS SCANS [SECS]]     (default 60000 250000 1000000 10000 20)
#
# For each engine: generates the fleet (crates/exhunt-serve/examples/serve-bench.rs), starts the
# server on an empty database, puts the organisations in (bulk SQL), uploads the scan results
# and then the probe rows through the real HTTP upload (50,000 rows per request; rows/s), and
# imports the same rows with the engine's own bulk loader into a plain table (`sqlite3 .import`,
# `psql \copy`) for the ratio. Then the server is restarted (so that its peak memory is the
# serving one) and 50 clients ask for the overview, then for random organisation pages, for SECS
# each (p50/p95/p99); the same store queries are timed without HTTP (the baseline). Last, a
# fleet a tenth the size (6,000 organisations) is loaded and served the same way: the server's
# peak RSS at 6,000 and at 60,000 organisations.
#
# PostgreSQL: a cluster of its own in the temporary folder, with the default durability
# settings (fsync, synchronous_commit and full_page_writes on), on a Unix socket; the server
# connects as an ordinary role (row-level security holds). Everything generated lives in a
# mktemp folder removed at the end.
set -euo pipefail
ORGS=${1:-60000}
SERVERS=${2:-250000}
ROWS=${3:-1000000}
SCANS=${4:-10000}
SECS=${5:-20}
CLIENTS=50
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh" serve-bench
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(free -m | awk '/Mem:/{print $2}') MiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== generating $ORGS organisations, $SERVERS servers, $ROWS probe rows, $SCANS scan results"
"$bin" gen "$work/full" "$ORGS" "$SERVERS" "$ROWS" "$SCANS"
"$bin" gen "$work/small" $((ORGS / 10)) $((SERVERS / 10)) $((ROWS / 10)) $((SCANS / 10))

mkdir -p "$work/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -U exhunt -A trust -E UTF8 --locale=C.UTF-8 >"$work/pg/initdb.log" 2>&1
# Statements of a second or more and autovacuum's work are logged, and printed at the end: a
# plan that turns bad at this scale, or maintenance running beside an upload, shows there.
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/server.log" -o "-k $work/pg -c listen_addresses= -c log_min_duration_statement=1000 -c log_parameter_max_length=0 -c log_autovacuum_min_duration=0" start >/dev/null
psql_admin() { psql -X -q -h "$work/pg" -U exhunt -d postgres "$@"; }
psql_admin -c "CREATE ROLE exhunt_app LOGIN NOSUPERUSER"
echo "== PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'): fsync=$(psql_admin -Atc 'show fsync'), synchronous_commit=$(psql_admin -Atc 'show synchronous_commit'), full_page_writes=$(psql_admin -Atc 'show full_page_writes')"

db_url() { # engine name
  if [ "$1" = sqlite ]; then
    echo "sqlite://$work/$2.db"
  else
    psql_admin -c "CREATE DATABASE $2 OWNER exhunt_app"
    echo "postgres:///$2?host=$work/pg&user=exhunt_app"
  fi
}

start() { # db log -> sets url token pid
  "$bin" serve "$1" 127.0.0.1:0 >"$2" 2>"$2.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do grep -q '^listening' "$2" && break; sleep 0.2; done
  url=$(awk '/^listening/{print $3}' "$2")
  [ -n "$url" ] || { cat "$2.err"; exit 1; }
}
rss() { awk '/VmHWM/{printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }

baseline_import() { # engine data
  local csv=$2/probe.csv n t0 t1
  n=$(wc -l <"$csv")
  local cols="source TEXT, ip TEXT, port BIGINT, host TEXT, state TEXT, decided_by TEXT, build TEXT, detail TEXT, seen TEXT, raw TEXT"
  t0=$(date +%s.%N)
  if [ "$1" = sqlite ]; then
    sqlite3 "$work/plain.db" "PRAGMA journal_mode=WAL;" "CREATE TABLE plain ($cols);" ".mode csv" ".import $csv plain" >/dev/null
  else
    psql_admin -c "CREATE DATABASE plain"
    psql -X -q -h "$work/pg" -U exhunt -d plain -c "CREATE TABLE plain ($cols)" -c "\\copy plain FROM '$csv' WITH (FORMAT csv)"
  fi
  t1=$(date +%s.%N)
  python3 -c "print(f'{int($n / ($t1 - $t0))}')"
}

for engine in sqlite postgres; do
  echo
  echo "=================== $engine"
  for size in full small; do
    data=$work/$size
    db=$(db_url "$engine" "fleet_$size")
    start "$db" "$work/serve-$engine-$size.log"
    token=$(awk '/^token/{print $2}' "$work/serve-$engine-$size.log")
    "$bin" orgs "$db" "$data" 2>&1 | sed 's/^/   /'
    out=$("$bin" upload "$url" "$token" "$data" 2>"$work/upload-$engine-$size.err")
    echo "$out" | sed 's/^/   /'
    load_rss=$(rss "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$size" = full ]; then
      ingest=$(echo "$out" | sed -n 's/.*: \([0-9]*\) rows\/s/\1/p')
      base=$(baseline_import "$engine" "$data")
      echo "   ingest through HTTP: $ingest rows/s; baseline bulk import ($([ "$engine" = sqlite ] && echo 'sqlite3 .import' || echo 'psql \copy')) of the same rows into a plain table: $base rows/s; ratio $(python3 -c "print(round($ingest / $base, 2))")"
    fi
    start "$db" "$work/serve2-$engine-$size.log"
    cookie=$("$bin" session "$db" "$token")
    norgs=$([ "$size" = full ] && echo "$ORGS" || echo $((ORGS / 10)))
    echo "   [$size: $norgs organisations] load: $(cut -d' ' -f1-3 /proc/loadavg); server peak RSS while loading $load_rss"
    ov=$("$bin" hammer "$url" "$cookie" "$CLIENTS" "$SECS" /)
    echo "   overview, $CLIENTS clients: $ov"
    op=$("$bin" hammer "$url" "$cookie" "$CLIENTS" "$SECS" "/orgs/{org}#$norgs")
    echo "   organisation pages, $CLIENTS clients: $op"
    echo "   server peak RSS serving (after both): $(rss "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    if [ "$size" = full ]; then
      bo=$("$bin" direct "$db" "$token" "$CLIENTS" "$SECS" overview "$norgs")
      echo "   baseline, the overview's store queries without HTTP: $bo"
      bg=$("$bin" direct "$db" "$token" "$CLIENTS" "$SECS" orgs "$norgs")
      echo "   baseline, an organisation page's store queries without HTTP: $bg"
      p95() { echo "$1" | sed -n 's/.*p95 \([0-9.]*\) ms.*/\1/p'; }
      echo "   p95 ratio page/baseline: overview $(python3 -c "print(round($(p95 "$ov") / $(p95 "$bo"), 2))"), organisation $(python3 -c "print(round($(p95 "$op") / $(p95 "$bg"), 2))")"
    fi
  done
done
echo
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== PostgreSQL: statements of 1 s or more, and autovacuum / autoanalyze (server log)"
grep -E "duration: [0-9]{4,}|automatic (vacuum|analyze)" "$work/pg/server.log" | cut -c1-240 | head -60 || true
