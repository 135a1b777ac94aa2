#!/usr/bin/env bash
# Web-shell detection benchmark (issue #12): recall on public web shells and false positives on
# pages of real applications, by content alone, through the whole scanner.
#
#   bench/webshells.sh [EXTRA_DIR]
#
# Reads ../shared/data/webshells-aspx/samples (137 public ASP.NET web shells; SOURCES.tsv gives
# each one's path in its collection) and ../shared/data/benign-aspx (486 pages, handlers and
# services of four real applications, with their upload handlers, file managers and admin
# consoles: the hard negatives). EXTRA_DIR, when given, holds more sets in the same shape
# (EXTRA_DIR/shells/, EXTRA_DIR/benign/): collections and applications that are not in
# ../shared, so that no rule is tuned to the measured files.
#
# 1. Content alone: the files are copied into a plain folder that is no Exchange web root and
#    scanned with --deep. A shell is found when a finding of high or critical severity names it;
#    an application page named high or critical is a false positive (listed per rule).
# 2. Place: the same files as a second IIS site (C:\inetpub\sites\crm, named in
#    applicationHost.config) scanned without --deep: the site's scripts must be read, the shells
#    found, and the application pages only listed for review (low confidence).
# 3. Reference: signature-base's YARA rules (../shared/data/Neo23x0_signature-base) through
#    --yara on the same plain folder, for comparison (their findings are EXH-YARA-2).
# Targets: recall >= 95 %, 0 application pages high or critical.
set -euo pipefail
EXTRA=${1:-}
cd "$(dirname "$0")/.."
DATA=../shared/data
[ -d "$DATA/webshells-aspx/samples" ] || { echo "needs $DATA/webshells-aspx (see its README)"; exit 2; }
OUT=bench/out/webshells
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build -q --release -p exhunt
EX=${CARGO_TARGET_DIR:-target}/release/exhunt

PLAIN=$OUT/plain
mkdir -p "$PLAIN/shells" "$PLAIN/benign"
cp "$DATA"/webshells-aspx/samples/ws* "$PLAIN/shells/"
cp -r "$DATA/benign-aspx/." "$PLAIN/benign/"
rm -f "$PLAIN/benign/MANIFEST.tsv"
if [ -n "$EXTRA" ]; then
  [ -d "$EXTRA/shells" ] && mkdir -p "$PLAIN/extra-shells" && cp -r "$EXTRA/shells/." "$PLAIN/extra-shells/"
  [ -d "$EXTRA/benign" ] && mkdir -p "$PLAIN/extra-benign" && cp -r "$EXTRA/benign/." "$PLAIN/extra-benign/"
fi

SITE=$OUT/site
mkdir -p "$SITE/C/Windows/System32/inetsrv/config" "$SITE/C/inetpub/sites/crm"
cp -r "$PLAIN/." "$SITE/C/inetpub/sites/crm/"
cat > "$SITE/C/Windows/System32/inetsrv/config/applicationHost.config" <<'XML'
<configuration><system.applicationHost><sites>
<site name="Default Web Site" id="1"><application path="/"><virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\wwwroot" /></application></site>
<site name="crm" id="2"><application path="/" applicationPool="crm"><virtualDirectory path="/" physicalPath="%SystemDrive%\inetpub\sites\crm" /></application></site>
</sites></system.applicationHost></configuration>
XML

t0=$(date +%s.%N)
"$EX" scan "$PLAIN" --deep --format json -o "$OUT/plain.json" -q || true
t1=$(date +%s.%N)
"$EX" scan "$SITE" --format json -o "$OUT/site.json" -q || true
t2=$(date +%s.%N)
SB=$DATA/Neo23x0_signature-base/yara
if [ -d "$SB" ]; then
  "$EX" scan "$PLAIN" --deep --yara "$SB" --format json -o "$OUT/sigbase.json" -q 2>/dev/null || true
fi

python3 - "$OUT" "$DATA/webshells-aspx/SOURCES.tsv" "$t0" "$t1" "$t2" <<'PY'
import json, os, sys, collections
out, sources, t0, t1, t2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:6])
family = {}
for line in open(sources):
    parts = line.rstrip("\n").split("\t")
    if len(parts) >= 3:
        family[parts[0]] = parts[2]

def files_of(prefix):
    root = os.path.join(out, "plain", prefix)
    res = []
    for d, _, fs in os.walk(root):
        for f in fs:
            res.append(os.path.relpath(os.path.join(d, f), os.path.join(out, "plain")))
    return sorted(res)

def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    return json.load(open(p))["servers"][0]

def by_file(server, root, rules=None):
    """rel path -> [(rule, severity, confidence, title)]"""
    m = collections.defaultdict(list)
    for f in server["findings"]:
        path = f["evidence"]["path"].replace("\\", "/")
        i = path.find(root)
        if i < 0:
            continue
        rel = path[i + len(root):].lstrip("/")
        if rules and f["rule_id"] not in rules:
            continue
        m[rel].append((f["rule_id"], f["severity"], f["confidence"], f["title"]))
    return m

HIGH = {"high", "critical"}
def report(label, server, root, rules=None):
    m = by_file(server, root, rules)
    for kind_shells, kind_benign in [("shells", "benign"), ("extra-shells", "extra-benign")]:
        shells, benign = files_of(kind_shells), files_of(kind_benign)
        if not shells and not benign:
            continue
        found = [s for s in shells if any(sev in HIGH for _, sev, _, _ in m.get(s, []))]
        missed = [s for s in shells if s not in found]
        fp = collections.Counter()
        fp_files = []
        review = 0
        for b in benign:
            hits = [r for r, sev, _, _ in m.get(b, []) if sev in HIGH]
            if hits:
                fp_files.append((b, hits))
                fp.update(set(hits))
            elif m.get(b):
                review += 1
        tag = "" if kind_shells == "shells" else " (extra sets)"
        if shells:
            print(f"{label}{tag}: recall {len(found)}/{len(shells)} = {100*len(found)/len(shells):.1f} % (target >= 95 %)")
            for s in missed:
                name = os.path.basename(s)
                print(f"    missed {name}  {family.get(name, '')}")
        if benign:
            print(f"{label}{tag}: application pages high/critical {len(fp_files)}/{len(benign)} (target 0); per rule {dict(fp)}; listed for review only: {review}")
            for b, hits in fp_files[:20]:
                print(f"    false positive {b}: {hits}")

plain = load("plain.json")
report("content alone (--deep, plain folder)", plain, "plain")
site = load("site.json")
roots = [r for r in site["coverage"].get("web_roots", []) if r.get("site") == "crm"]
print(f"second IIS site without --deep: web root {roots[0]['folder'] if roots else 'NOT FOUND'}, {roots[0]['scripts'] if roots else 0} scripts read")
report("second IIS site (no --deep)", site, "sites/crm")
sb = load("sigbase.json")
if sb:
    report("reference: signature-base YARA (EXH-YARA-2 only)", sb, "plain", rules={"EXH-YARA-2"})
print(f"time: plain {t1-t0:.2f} s, site {t2-t1:.2f} s")
PY
