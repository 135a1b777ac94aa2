#!/usr/bin/env bash
# Benchmark of the file checks (issue #3), side by side with the reference tools in one run:
#
#   bench/files.sh [WEB_FILES] [IMAGE_MIB] [RUNS] [IMAGE_FILES]
#                                          (defaults: 20000, 20480, 3, 300000)
#
# 1. A tree of WEB_FILES web-root files with ten candidates: exhunt scan (built-in YARA pack,
#    hashes, names, magic) against `yr scan` of the same built-in pack (yara-x CLI, installed
#    from crates.io into bench/out/yr if missing). Target: exhunt <= 1.2x yr.
# 2. A C:-like tree of IMAGE_MIB MiB in IMAGE_FILES files (a Windows install holds hundreds of
#    thousands; `0` gives the old shape of 0.25-2 MiB files, about 18,000 for 20 GiB), mostly
#    not evidence, with ten candidates: exhunt scan against a plain walk
#    (`find -type f | wc -l`). Target: exhunt <= 1.2x the walk. The files are sparse past
#    their first 4 KiB (a walk and exhunt's sniffing read heads only), so the tree takes about
#    IMAGE_FILES x 4 KiB of disk. Timed with millisecond precision (python perf_counter).
# Both on a warm page cache; medians of RUNS alternating runs.
set -euo pipefail
FILES=${1:-20000}
MIB=${2:-20480}
RUNS=${3:-3}
IMGFILES=${4:-300000}
cd "$(dirname "$0")/.."
REL=${CARGO_TARGET_DIR:-target}/release
OUT=bench/out
mkdir -p "$OUT"
cargo build -q --release -p exhunt -p gen-corpus
YR=$(command -v yr || true)
if [ -z "$YR" ]; then
  YR=$OUT/yr/bin/yr
  [ -x "$YR" ] || cargo install -q --locked yara-x-cli --version 1.22.1 --root "$OUT/yr"
fi
WEB=$OUT/webtree-$FILES
IMG=$OUT/image-$MIB-$IMGFILES
[ -f "$WEB/.done" ] || { rm -rf "$WEB"; "$REL"/gen-corpus webtree "$WEB" "$FILES"; touch "$WEB/.done"; }
if [ "$IMGFILES" = 0 ]; then gen_img=(image "$IMG" "$MIB"); else gen_img=(image "$IMG" "$MIB" "$IMGFILES"); fi
[ -f "$IMG/.done" ] || { rm -rf "$IMG"; "$REL"/gen-corpus "${gen_img[@]}"; touch "$IMG/.done"; }
find "$WEB" -type f -exec cat {} + > /dev/null
find "$IMG" -type f > /dev/null

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { /usr/bin/time -f "%e %M" -o "$OUT/t" "$@" > /dev/null 2>&1 || true; tail -1 "$OUT/t"; }

ex=(); yr=(); exm=0
for i in $(seq "$RUNS"); do
  read -r a m < <(t "$REL"/exhunt scan "$WEB" --format json -o "$OUT/web.json" -q)
  ex+=("$a"); [ "$m" -gt "$exm" ] && exm=$m
  read -r b _ < <(t "$YR" scan --recursive -p "$(nproc)" rules/yara/exhunt-webshells.yar "$WEB")
  yr+=("$b")
  echo "web tree run $i: exhunt $a s, yr $b s"
done
e=$(median "${ex[@]}"); y=$(median "${yr[@]}")
hits=$("$YR" scan --recursive rules/yara/exhunt-webshells.yar "$WEB" 2>/dev/null | wc -l)
python3 - "$e" "$y" "$exm" "$hits" "$OUT/web.json" <<'PY'
import json, sys
e, y, m, hits = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(sys.argv[5]))
n = sum(1 for f in r["servers"][0]["findings"] if f["rule_id"] == "EXH-YARA-1")
print(f"web tree: exhunt {e:.2f} s ({n} YARA findings, peak RSS {m/1024:.0f} MiB), yr {y:.2f} s ({hits} matches); ratio {e/y:.2f} (target <= 1.2): {'OK' if e/y <= 1.2 else 'MISSED'}")
PY

# Millisecond timing: the walk of a small tree takes tens of milliseconds.
ms() { python3 -c 'import subprocess,sys,time; t=time.perf_counter(); subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL); print(f"{time.perf_counter()-t:.4f}")' "$@"; }
ex=(); wk=()
for i in $(seq "$RUNS"); do
  a=$(ms "$REL"/exhunt scan "$IMG" --format json -o "$OUT/img.json" -q)
  ex+=("$a")
  b=$(ms sh -c "find '$IMG' -type f | wc -l")
  wk+=("$b")
  echo "image run $i: exhunt $a s, find $b s"
done
e=$(median "${ex[@]}"); w=$(median "${wk[@]}")
python3 - "$e" "$w" "$OUT/img.json" <<'PY'
import json, sys
e, w = float(sys.argv[1]), float(sys.argv[2])
r = json.load(open(sys.argv[3]))
s = r["servers"][0]
found = sorted({f["evidence"]["path"].rsplit("/", 1)[-1] for f in s["findings"]})
print(f"image: exhunt {e:.3f} s ({s['coverage']['files_seen']} files seen, candidates found: {len(found)}), find {w:.3f} s; ratio {e/max(w,0.01):.2f} (target <= 1.2): {'OK' if e/max(w,0.01) <= 1.2 else 'MISSED'}")
PY
