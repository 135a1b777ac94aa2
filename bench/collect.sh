#!/usr/bin/env bash
# Benchmark of `exhunt collect` (issue 16), side by side with `zip -r` in one run:
#
#   bench/collect.sh [IMAGE_MIB] [IMAGE_FILES] [LOG_MIB] [RUNS]
#                                   (defaults: 20480, 300000, 2048, 3)
#
# The tree is the files benchmark's C:-like image (`gen-corpus image`: IMAGE_MIB MiB in
# IMAGE_FILES files, sparse past their first 4 KiB, plus web roots and ten candidates) with
# LOG_MIB MiB of Exchange HttpProxy and IIS logs written into the same tree (`gen-corpus bench`):
# a server's C: holds both, and the logs are what a collection mostly copies.
#
# exhunt collect TREE -o PACKAGE  (walk of the whole tree, selection, SHA-256 of every file,
# deflate, manifest, package hash) against `zip -r` of the same selected files (the list is read
# from the package's manifest; zip does not walk or select, so the comparison is in its favour):
#   - `zip -r` as it comes (deflate level 6): the issue's target, exhunt <= 1.5x;
#   - `zip -r -1`, the deflate level exhunt uses by default, for a like-for-like figure.
# Medians of RUNS alternating runs, warm page cache, millisecond timing (python perf_counter).
# exhunt is built without the `yara` feature: collect uses no YARA, and the build is lighter.
set -euo pipefail
MIB=${1:-20480}
IMGFILES=${2:-300000}
LOGMIB=${3:-2048}
RUNS=${4:-3}
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT"
TGT=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p exhunt --no-default-features
cargo build -q --release -p gen-corpus
EXHUNT=$TGT/release/exhunt
TREE=$OUT/collect-$MIB-$IMGFILES-$LOGMIB
if [ ! -f "$TREE/.done" ]; then
  rm -rf "$TREE"
  "$TGT/release/gen-corpus" image "$TREE" "$MIB" "$IMGFILES"
  "$TGT/release/gen-corpus" bench "$TREE" "$LOGMIB"
  touch "$TREE/.done"
fi
find "$TREE" -type f > /dev/null
find "$TREE/Program Files" "$TREE/inetpub" -type f -exec cat {} + > /dev/null

ms() { python3 -c 'import subprocess,sys,time; t=time.perf_counter(); r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL); print(f"{time.perf_counter()-t:.3f}")' "$@"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

PKG=$OUT/collect.zip
LIST=$OUT/collect.list
ABS=$(cd "$TREE" && pwd)
ex=(); z6=(); z1=()
for i in $(seq "$RUNS"); do
  rm -f "$PKG" "$PKG.sha256"
  a=$(ms "$EXHUNT" collect "$TREE" -o "$PKG" -q)
  ex+=("$a")
  # The selected files, relative to the tree, from the manifest.
  unzip -p "$PKG" exhunt-manifest.json | python3 -c '
import json, sys
root = sys.argv[1]
for f in json.load(sys.stdin)["files"]:
    print(f["original"][len(root) + 1:])' "$ABS" > "$LIST"
  rm -f "$OUT/zip6.zip" "$OUT/zip1.zip"
  b=$(ms sh -c "cd '$TREE' && zip -q -r '$PWD/$OUT/zip6.zip' -@ < '$PWD/$LIST'")
  z6+=("$b")
  c=$(ms sh -c "cd '$TREE' && zip -q -r -1 '$PWD/$OUT/zip1.zip' -@ < '$PWD/$LIST'")
  z1+=("$c")
  echo "run $i: exhunt collect $a s, zip -r $b s, zip -r -1 $c s"
done
e=$(median "${ex[@]}"); b=$(median "${z6[@]}"); c=$(median "${z1[@]}")
"$EXHUNT" collect --verify "$PKG" -q
python3 - "$e" "$b" "$c" "$PKG" "$OUT/zip6.zip" "$OUT/zip1.zip" "$LIST" <<'PY'
import os, sys
e, b, c = map(float, sys.argv[1:4])
pkg, z6, z1, lst = sys.argv[4:8]
n = sum(1 for _ in open(lst))
mib = lambda p: os.path.getsize(p) / 1048576
print(f"selected {n} files; package {mib(pkg):.0f} MiB, zip -r {mib(z6):.0f} MiB, zip -r -1 {mib(z1):.0f} MiB")
print(f"exhunt collect {e:.2f} s, zip -r {b:.2f} s, zip -r -1 {c:.2f} s; "
      f"ratio {e/b:.2f} to zip -r (target <= 1.5): {'OK' if e/b <= 1.5 else 'MISSED'}, {e/c:.2f} to zip -r -1")
PY
