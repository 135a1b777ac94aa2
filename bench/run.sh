#!/usr/bin/env bash
# Benchmark: exhunt scan vs ripgrep on the same generated corpus, in the same run.
#
#   bench/run.sh [SIZE_MIB] [RUNS]      (defaults: 2048 MiB, 3 runs each, alternating)
#
# Generates (once, cached in bench/out/) a corpus of HttpProxy and IIS logs with injected
# ProxyLogon attacks, then times `exhunt scan` (all checks, JSON output to a file) and
# `rg -c -i` with exactly the prefilter patterns exhunt uses (`exhunt rules prefilters`:
# literals and a few literal-led regexes, one alternation per log kind),
# both on a warm page cache. Prints wall times (median), their ratio, exhunt's MB/s and the
# peak RSS of both. Targets (issue #2): ratio <= 1.5, exhunt peak RSS <= 200 MiB.
set -euo pipefail
SIZE=${1:-2048}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
command -v rg >/dev/null || { apt-get install -y ripgrep >/dev/null 2>&1 || { echo "install ripgrep (Debian package ripgrep)"; exit 2; }; }
[ -x /usr/bin/time ] || { apt-get install -y time >/dev/null 2>&1 || { echo "install GNU time"; exit 2; }; }
cargo build -q --release -p exhunt -p gen-corpus
OUT=bench/out
CORPUS=$OUT/corpus-$SIZE
mkdir -p "$OUT"
if [ ! -f "$CORPUS/.done" ]; then
  rm -rf "$CORPUS"
  target/release/gen-corpus bench "$CORPUS" "$SIZE"
  touch "$CORPUS/.done"
fi
target/release/exhunt rules prefilters | cut -f2 | sort -u > "$OUT/literals.txt"
BYTES=$(find "$CORPUS" -type f -name '*.*' ! -name '.done' -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
FILES=$(find "$CORPUS" -type f ! -name '.done' | wc -l)
echo "corpus: $CORPUS, $FILES files, $((BYTES / 1048576)) MiB; prefilter patterns: $(wc -l < "$OUT/literals.txt"); cores: $(nproc)"
# Warm the page cache for both tools.
find "$CORPUS" -type f -exec cat {} + > /dev/null

ex_t=(); ex_m=(); rg_t=(); rg_m=()
for i in $(seq "$RUNS"); do
  /usr/bin/time -f "%e %M" -o "$OUT/time.ex" target/release/exhunt scan "$CORPUS" --format json -o "$OUT/result.json" -q || true
  read -r t m < <(tail -1 "$OUT/time.ex"); ex_t+=("$t"); ex_m+=("$m")
  /usr/bin/time -f "%e %M" -o "$OUT/time.rg" rg -c -i -f "$OUT/literals.txt" "$CORPUS" > "$OUT/rg.out" || true
  read -r t m < <(tail -1 "$OUT/time.rg"); rg_t+=("$t"); rg_m+=("$m")
  echo "run $i: exhunt ${ex_t[-1]} s, ${ex_m[-1]} KiB; rg ${rg_t[-1]} s, ${rg_m[-1]} KiB"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
max() { printf '%s\n' "$@" | sort -g | tail -1; }
et=$(median "${ex_t[@]}"); rt=$(median "${rg_t[@]}")
em=$(max "${ex_m[@]}"); rm_=$(max "${rg_m[@]}")
python3 - "$et" "$rt" "$em" "$rm_" "$BYTES" "$OUT/result.json" <<'PY'
import json, sys
et, rt, em, rm, b = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(sys.argv[6]))
s = r["servers"][0]
print(f"exhunt: {et:.2f} s median, {b/1e6/et:.0f} MB/s, peak RSS {em/1024:.0f} MiB, verdict {r['verdict']}, {len(s['findings'])} findings stored")
print(f"rg -c : {rt:.2f} s median, {b/1e6/rt:.0f} MB/s, peak RSS {rm/1024:.0f} MiB")
ratio = et / rt
print(f"ratio exhunt/rg wall time: {ratio:.2f} (target <= 1.5): {'OK' if ratio <= 1.5 else 'MISSED'}")
print(f"exhunt peak RSS {em/1024:.0f} MiB (target <= 200 MiB): {'OK' if em/1024 <= 200 else 'MISSED'}")
PY
