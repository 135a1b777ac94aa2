#!/usr/bin/env bash
# Benchmark of the event-log checks (issue #4), side by side with the reference in one run:
#
#   bench/evtx.sh [COPIES] [RUNS]     (defaults: 100, 3)
#
# Corpus: COPIES copies of each EVTX sample in ../shared/data (2.4 MiB, 2,245 events per set; the
# DeepBlueCLI application log is most of it). exhunt scans the folder (a) with its built-in event
# rules and (b) with the SigmaHQ rules of ../shared/data added (--sigma); the reference is
# `evtx_dump -o jsonl` (the evtx crate's own CLI, installed from crates.io into bench/out/evtx
# if missing) dumping the same files, one process per file as it must, with as many threads.
# Target: exhunt with the built-in rules <= 1.5x evtx_dump. Warm page cache; medians of RUNS.
set -euo pipefail
COPIES=${1:-100}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
REL=${CARGO_TARGET_DIR:-target}/release
DATA=../shared/data
[ -d "$DATA" ] || { echo "bench/evtx.sh needs ../shared/data (EVTX samples)"; exit 2; }
OUT=bench/out
mkdir -p "$OUT"
cargo build -q --release -p exhunt
DUMP=$OUT/evtx/bin/evtx_dump
[ -x "$DUMP" ] || cargo install -q --locked evtx --version 0.15.1 --root "$OUT/evtx"
CORPUS=$OUT/evtx-$COPIES
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"; mkdir -p "$CORPUS"
  i=0
  while IFS= read -r -d '' f; do
    i=$((i + 1))
    for c in $(seq "$COPIES"); do cp "$f" "$CORPUS/s${i}-c${c}.evtx"; done
  done < <(find "$DATA" -name '*.evtx' -print0)
  touch "$CORPUS/.done"
fi
cat "$CORPUS"/*.evtx > /dev/null
MB=$(du -sm "$CORPUS" | cut -f1)
N=$(nproc)

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { /usr/bin/time -f "%e %M" -o "$OUT/t" "$@" > /dev/null 2>&1 || true; tail -1 "$OUT/t"; }

ex=(); sg=(); du=(); exm=0
for i in $(seq "$RUNS"); do
  read -r a m < <(t "$REL"/exhunt scan "$CORPUS" --format json -o "$OUT/evtx.json" -q)
  ex+=("$a"); [ "$m" -gt "$exm" ] && exm=$m
  read -r s _ < <(t "$REL"/exhunt scan "$CORPUS" --sigma "$DATA/SigmaHQ_sigma" --format json -o "$OUT/evtx-sigma.json" -q)
  sg+=("$s")
  read -r d _ < <(t sh -c "for f in '$CORPUS'/*.evtx; do '$DUMP' -o jsonl -t $N \"\$f\"; done")
  du+=("$d")
  echo "run $i: exhunt $a s, exhunt --sigma $s s, evtx_dump $d s"
done
e=$(median "${ex[@]}"); s=$(median "${sg[@]}"); d=$(median "${du[@]}")
python3 - "$e" "$s" "$d" "$exm" "$MB" "$OUT/evtx.json" "$OUT/evtx-sigma.json" <<'PY'
import json, sys
e, s, d, m, mb = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(sys.argv[6])); rs = json.load(open(sys.argv[7]))
k = next(k for k in r["servers"][0]["coverage"]["kinds"] if k["kind"] == "evtx")
n = k["records"]
f = len(r["servers"][0]["findings"]) + sum(x["count"] for x in r["servers"][0]["suppressed"])
fs = len(rs["servers"][0]["findings"]) + sum(x["count"] for x in rs["servers"][0]["suppressed"])
print(f"corpus: {k['files']} EVTX files, {mb} MiB, {n} events")
print(f"exhunt built-in rules: {e:.2f} s ({n/e:,.0f} events/s, {f} findings, peak RSS {m/1024:.0f} MiB)")
print(f"exhunt + SigmaHQ ({rs['rules']['sigma_rules']} rules): {s:.2f} s ({n/s:,.0f} events/s, {fs} findings)")
print(f"evtx_dump -o jsonl: {d:.2f} s ({n/d:,.0f} events/s)")
print(f"ratio built-in/evtx_dump {e/d:.2f} (target <= 1.5): {'OK' if e/d <= 1.5 else 'MISSED'}; with SigmaHQ {s/d:.2f}")
PY
