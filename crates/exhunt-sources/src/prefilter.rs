//! The block prefilter of the log reader: anchor literals found with SIMD, then the prefilter
//! patterns on the lines they point at.
//!
//! The prefilter patterns of a log kind are one alternation of ASCII case-insensitive regular
//! expressions. Run as one regex over whole blocks, they cost the lazy DFA's speed on every byte
//! (about half a GB/s): one pattern without a usable literal prefix (the ProxyShell pattern starts
//! with a field separator or a percent sign) turns the regex engine's own literal prefilter off,
//! and so do the case variants of a hundred literals. ripgrep pays the same with `-i -f P`.
//!
//! So each pattern is read for its **anchors**: a few literals one of which every match of the
//! pattern contains (taken from its syntax tree: a literal run, its prefix, its suffix, or a
//! product of small alternations, whichever is longest). A block is folded to lower case once and
//! searched for the anchors in small groups with Teddy (`aho_corasick::packed`), which runs at
//! several GB/s when a group holds a handful of literals of three bytes or more. Only the lines
//! an anchor hits are matched against the patterns themselves, one line at a time, so the set of
//! candidate lines is exactly the lines a pattern matches. A pattern without usable anchors (none
//! today) is searched the old way, as a regex over the block.

use aho_corasick::packed::{self, Searcher};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, Span};
use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Largest set of literals a product of alternations may grow to.
const PRODUCT_LIMIT: usize = 64;
/// Largest set of anchors one pattern may have before it is searched as a regex.
const ANCHOR_LIMIT: usize = 24;
/// Anchors per Teddy pass. Measured on the HttpProxy logs of the realistic corpus (32 anchors,
/// CPU time of the filter alone): 8 per pass 0.40 s, 16 0.31 s, all in one (fat Teddy) 0.37 s.
const GROUP: usize = 16;

/// What every match of a piece of a pattern is: one of `exact`, or a string containing one of
/// `factors`. Literals are lower case (the patterns are ASCII case-insensitive).
#[derive(Debug, Clone, Default)]
struct Cover {
    exact: Vec<Vec<u8>>,
    factors: Vec<Vec<u8>>,
}

fn lower(b: &[u8]) -> Vec<u8> {
    b.to_ascii_lowercase()
}

fn dedup(v: &mut Vec<Vec<u8>>) {
    v.sort();
    v.dedup();
}

/// Keeps only the strings that contain no other string of the set (the shorter one is implied).
fn minimise(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    dedup(&mut v);
    let all = v.clone();
    v.retain(|s| {
        !all.iter()
            .any(|o| o.len() < s.len() && memmem::find(s, o).is_some())
    });
    v
}

/// How good a set of anchors is: longer shortest literal first (capped: beyond a few bytes Teddy
/// does not care), then fewer literals, then longer ones (fewer lines to verify).
fn score(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>, usize) {
    let min = set.iter().map(Vec::len).min().unwrap_or(0);
    (min.min(6), std::cmp::Reverse(set.len()), min)
}

impl Cover {
    fn exact(v: Vec<Vec<u8>>) -> Cover {
        Cover {
            exact: v,
            factors: Vec::new(),
        }
    }
    /// The anchors this cover gives on its own, if any.
    fn anchors(&self) -> Option<Vec<Vec<u8>>> {
        let all: Vec<Vec<u8>> = self.exact.iter().chain(&self.factors).cloned().collect();
        if all.is_empty() || all.iter().any(Vec::is_empty) {
            return None;
        }
        Some(minimise(all))
    }
    /// The same matches described by factors only, with a short summary of a large exact set:
    /// its longest common prefix (`%40`, `%2540`, `%%34%30` all say `%`).
    fn summarised(&self) -> Option<Cover> {
        if self.exact.len() <= 1 {
            return Some(self.clone());
        }
        let first = &self.exact[0];
        let lcp = self.exact[1..].iter().fold(first.len(), |n, s| {
            first
                .iter()
                .zip(s)
                .take(n)
                .take_while(|(a, b)| a == b)
                .count()
        });
        if lcp == 0 {
            return Some(self.clone());
        }
        let mut factors = self.factors.clone();
        factors.push(first[..lcp].to_vec());
        Some(Cover {
            exact: Vec::new(),
            factors: minimise(factors),
        })
    }
}

fn class_bytes(c: &Class) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.ranges() {
                if usize::from(r.end() - r.start()) > 64 {
                    return None;
                }
                out.extend((r.start()..=r.end()).map(|x| x.to_ascii_lowercase()));
            }
        }
        Class::Unicode(u) => {
            for r in u.ranges() {
                let (s, e) = (u32::from(r.start()), u32::from(r.end()));
                if e > 0x7f || e - s > 64 {
                    return None;
                }
                out.extend((s..=e).map(|x| (x as u8).to_ascii_lowercase()));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    (out.len() <= 16).then_some(out)
}

fn product(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > PRODUCT_LIMIT {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    dedup(&mut out);
    Some(out)
}

fn cover(h: &Hir) -> Option<Cover> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(Cover::exact(vec![Vec::new()])),
        HirKind::Literal(l) => Some(Cover::exact(vec![lower(&l.0)])),
        HirKind::Class(c) => {
            let bytes = class_bytes(c)?;
            Some(Cover::exact(bytes.into_iter().map(|b| vec![b]).collect()))
        }
        HirKind::Capture(c) => cover(&c.sub),
        HirKind::Repetition(r) => {
            let sub = cover(&r.sub)?;
            match (r.min, r.max) {
                (1, Some(1)) => Some(sub),
                (0, Some(1)) => {
                    let mut c = sub;
                    c.exact.push(Vec::new());
                    dedup(&mut c.exact);
                    Some(c)
                }
                (0, _) => None,
                // At least one match of the sub-expression is inside.
                _ => Some(Cover {
                    exact: Vec::new(),
                    factors: sub.anchors()?,
                }),
            }
        }
        HirKind::Alternation(branches) => {
            let mut out = Cover::default();
            for b in branches {
                let c = cover(b)?;
                // A branch that is a product (an escape with its variants) is summarised.
                let c = if matches!(b.kind(), HirKind::Concat(_)) {
                    c.summarised()?
                } else {
                    c
                };
                out.exact.extend(c.exact);
                out.factors.extend(c.factors);
            }
            dedup(&mut out.exact);
            out.factors = minimise(out.factors);
            Some(out)
        }
        HirKind::Concat(children) => {
            let covers: Vec<Option<Cover>> = children.iter().map(cover).collect();
            concat_cover(&covers)
        }
    }
}

/// The best cover of a concatenation: the whole product when it is small, else the best run of
/// consecutive children (its product of exact sets, or their factors).
fn concat_cover(covers: &[Option<Cover>]) -> Option<Cover> {
    let n = covers.len();
    let mut best: Option<Cover> = None;
    let mut consider = |c: Cover| {
        let Some(a) = c.anchors() else {
            return;
        };
        let better = match best.as_ref().and_then(Cover::anchors) {
            None => true,
            Some(b) => score(&a) > score(&b),
        };
        if better {
            best = Some(c);
        }
    };
    let mut whole: Option<Cover> = None;
    for i in 0..n {
        // `prod`: the product of the exact sets so far; `None` once a child has no exact string
        // (each of its matches holds one of its factors, so the run's factors cover it).
        let mut prod: Option<Vec<Vec<u8>>> = Some(vec![Vec::new()]);
        let mut factors: Vec<Vec<u8>> = Vec::new();
        for (j, c) in covers.iter().enumerate().skip(i) {
            let Some(c) = c else { break };
            factors.extend(c.factors.iter().cloned());
            prod = match prod {
                Some(p) if !c.exact.is_empty() => match product(&p, &c.exact) {
                    Some(p) => Some(p),
                    // Too many strings: the run cannot grow.
                    None => break,
                },
                _ => None,
            };
            let mut fs = factors.clone();
            if let Some(p) = &prod {
                fs.extend(p.iter().cloned());
            }
            if i == 0
                && j == n - 1
                && let Some(p) = &prod
            {
                whole = Some(Cover {
                    exact: p.clone(),
                    factors: minimise(factors.clone()),
                });
            }
            consider(Cover {
                exact: Vec::new(),
                factors: fs,
            });
        }
    }
    // The exact product is more useful to an enclosing concatenation; keep it when it is as good.
    match (whole, best) {
        (Some(w), Some(b)) => match (w.anchors(), b.anchors()) {
            (Some(wa), Some(ba)) if score(&wa) >= score(&ba) => Some(w),
            _ => Some(b),
        },
        (w, b) => b.or(w),
    }
}

/// The anchors of one prefilter pattern (ASCII case-insensitive, lower case), or `None` when it
/// has none worth searching for: a pattern that can match the empty string, a literal of one
/// letter or digit, or too many literals.
pub fn anchors(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .ok()?;
    let set = cover(&hir)?.anchors()?;
    let usable = set.len() <= ANCHOR_LIMIT
        && set
            .iter()
            .all(|s| s.len() >= 2 || (s.len() == 1 && !s[0].is_ascii_alphanumeric()));
    usable.then_some(set)
}

/// Replaces literals that share a long prefix by the prefix (twenty web-shell paths under
/// `/aspnet_client/` are one Teddy literal, not three passes).
fn collapse(lits: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    const PREFIX: usize = 8;
    const SHARED: usize = 4;
    let mut by_prefix: std::collections::BTreeMap<&[u8], usize> = Default::default();
    for l in &lits {
        if l.len() >= PREFIX {
            *by_prefix.entry(&l[..PREFIX]).or_default() += 1;
        }
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for l in &lits {
        if l.len() < PREFIX || by_prefix[&l[..PREFIX]] < SHARED {
            out.push(l.clone());
            continue;
        }
        // The longest prefix all literals with these first bytes share.
        let group: Vec<&Vec<u8>> = lits
            .iter()
            .filter(|o| o.len() >= PREFIX && o[..PREFIX] == l[..PREFIX])
            .collect();
        let n = group.iter().fold(l.len(), |n, o| {
            l.iter()
                .zip(o.iter())
                .take(n)
                .take_while(|(a, b)| a == b)
                .count()
        });
        out.push(l[..n].to_vec());
    }
    minimise(out)
}

#[derive(Debug, Clone)]
enum Search {
    Teddy(Searcher),
    Automaton(AhoCorasick),
    Byte(u8),
    Two(memmem::Finder<'static>),
}

/// One search over the block, for one anchor or a group of them.
#[derive(Debug, Clone)]
struct Pass {
    search: Search,
    /// Per literal of the search, the patterns (bits) it is an anchor of.
    masks: Vec<u128>,
}

/// Every pattern: more patterns than bits are matched as one alternation.
const ALL: u128 = u128::MAX;

/// The prefilter of one log kind (see the module documentation).
#[derive(Debug, Clone)]
pub struct BlockFilter {
    passes: Vec<Pass>,
    /// Patterns without anchors, searched over the block.
    residual: Option<Regex>,
    /// All patterns, matched on one candidate line (`None`: no pattern).
    line: Option<Regex>,
    /// Each pattern alone, when there are at most 128: a hit line is matched against the
    /// patterns of the anchors on it only.
    each: Vec<Regex>,
    fold: bool,
}

fn build_regex(patterns: &[&str]) -> Regex {
    let alts: Vec<String> = patterns.iter().map(|l| format!("(?:{l})")).collect();
    RegexBuilder::new(&format!("(?i-u:{})", alts.join("|")))
        .unicode(false)
        .size_limit(64 << 20)
        .build()
        .expect("prefilter patterns are valid regular expressions")
}

impl BlockFilter {
    /// A filter for non-empty, valid `patterns` (with none, only directives are candidates).
    /// Panics on an invalid pattern (a bug of the caller, as for
    /// [`crate::reader::LogReader::new`]).
    pub fn new(patterns: &[&str]) -> BlockFilter {
        let line = (!patterns.is_empty()).then(|| build_regex(patterns));
        let per_pattern = patterns.len() <= 128;
        let mut own: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        let mut residual: Vec<&str> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match anchors(p) {
                Some(a) => own.push((i, a)),
                None => residual.push(p),
            }
        }
        let lits = collapse(minimise(
            own.iter().flat_map(|(_, a)| a.iter().cloned()).collect(),
        ));
        tracing::debug!(
            anchors = ?lits.iter().map(|l| String::from_utf8_lossy(l)).collect::<Vec<_>>(),
            residual = ?residual,
            "log prefilter"
        );
        // A kept literal is a substring of the anchors it stands for: it answers for every
        // pattern one of whose anchors contains it.
        let mask = |lit: &[u8]| -> u128 {
            if !per_pattern {
                return ALL;
            }
            own.iter()
                .filter(|(_, a)| a.iter().any(|x| memmem::find(x, lit).is_some()))
                .fold(0, |m, (i, _)| m | 1u128 << i)
        };
        let fold = lits.iter().flatten().any(u8::is_ascii_alphabetic);
        let mut passes = Vec::new();
        let (short, long): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            lits.into_iter().partition(|l| l.len() < 3);
        for s in short {
            passes.push(Pass {
                masks: vec![mask(&s)],
                search: match s.as_slice() {
                    [b] => Search::Byte(*b),
                    _ => Search::Two(memmem::Finder::new(&s).into_owned()),
                },
            });
        }
        for group in long.chunks(GROUP) {
            let teddy = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder()
                .extend(group)
                .build();
            passes.push(Pass {
                masks: group.iter().map(|l| mask(l)).collect(),
                search: match teddy {
                    Some(t) => Search::Teddy(t),
                    None => Search::Automaton(
                        AhoCorasick::builder()
                            .match_kind(MatchKind::LeftmostFirst)
                            .kind(Some(AhoCorasickKind::DFA))
                            .build(group)
                            .expect("a few short literals build an automaton"),
                    ),
                },
            });
        }
        let each = if per_pattern {
            patterns.iter().map(|p| build_regex(&[p])).collect()
        } else {
            Vec::new()
        };
        BlockFilter {
            passes,
            residual: (!residual.is_empty()).then(|| build_regex(&residual)),
            line,
            each,
            fold,
        }
    }

    /// Whether one line (without its line end) matches a pattern.
    pub fn line_matches(&self, line: &[u8]) -> bool {
        self.line.as_ref().is_some_and(|re| re.is_match(line))
    }

    /// Whether one line matches one of the patterns in `mask`.
    fn line_matches_some(&self, line: &[u8], mask: u128) -> bool {
        if mask == ALL || self.each.is_empty() {
            return self.line_matches(line);
        }
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            if self.each.get(i).is_some_and(|re| re.is_match(line)) {
                return true;
            }
        }
        false
    }

    /// The starts of the lines of `hay` (which starts at a line start) that are directives
    /// (`#…`) or match a pattern, in order, into `out`. `folded` (as long as `hay`) and `hits`
    /// are scratch space.
    pub fn candidates(
        &self,
        hay: &[u8],
        folded: &mut [u8],
        hits: &mut Vec<(usize, u128)>,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        hits.clear();
        if hay.is_empty() {
            return;
        }
        let line_start = |p: usize| memchr::memrchr(b'\n', &hay[..p]).map_or(0, |i| i + 1);
        let line_end = |p: usize| memchr::memchr(b'\n', &hay[p..]).map_or(hay.len(), |i| p + i);
        if hay[0] == b'#' {
            out.push(0);
        }
        // `#` is rare in logs but for directives: cheaper to find than `\n#`.
        out.extend(memchr::memchr_iter(b'#', hay).filter(|&i| i > 0 && hay[i - 1] == b'\n'));
        let text: &[u8] = if self.fold {
            for (f, h) in folded.iter_mut().zip(hay) {
                *f = h.to_ascii_lowercase();
            }
            &folded[..hay.len()]
        } else {
            hay
        };
        for pass in &self.passes {
            // Every hit counts (another anchor later on the line may stand for another
            // pattern); hits on one line are joined.
            let mut at = 0;
            let mut line: Option<(usize, usize)> = None;
            while at < hay.len() {
                let found = match &pass.search {
                    Search::Teddy(t) => t
                        .find_in(text, Span::from(at..text.len()))
                        .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
                    Search::Automaton(a) => a
                        .find(aho_corasick::Input::new(text).span(at..text.len()))
                        .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
                    Search::Byte(b) => {
                        memchr::memchr(*b, &text[at..]).map(|i| (at + i, at + i + 1, 0))
                    }
                    Search::Two(f) => f.find(&text[at..]).map(|i| (at + i, at + i + 2, 0)),
                };
                let Some((p, end, lit)) = found else { break };
                let m = pass.masks.get(lit).copied().unwrap_or(ALL);
                match line {
                    Some((ls, le)) if p < le => {
                        if let Some(h) = hits.last_mut().filter(|h| h.0 == ls) {
                            h.1 |= m;
                        }
                    }
                    _ => {
                        let ls = line_start(p);
                        line = Some((ls, line_end(p)));
                        hits.push((ls, m));
                    }
                }
                at = end.max(p + 1);
            }
        }
        if let Some(re) = &self.residual {
            let mut at = 0;
            while at < hay.len() {
                let Some(m) = re.find_at(hay, at) else { break };
                hits.push((line_start(m.start()), ALL));
                at = line_end(m.start()) + 1;
            }
        }
        hits.sort_unstable_by_key(|h| h.0);
        let mut i = 0;
        while i < hits.len() {
            let ls = hits[i].0;
            let mut mask = 0;
            while i < hits.len() && hits[i].0 == ls {
                mask |= hits[i].1;
                i += 1;
            }
            if hay[ls] == b'#' {
                continue; // already a directive
            }
            let le = line_end(ls);
            let line = &hay[ls..le];
            if self.line_matches_some(line.strip_suffix(b"\r").unwrap_or(line), mask) {
                out.push(ls);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: &str) -> Option<Vec<String>> {
        anchors(p).map(|v| {
            v.into_iter()
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .collect()
        })
    }

    #[test]
    fn anchors_of_literals_runs_and_alternations() {
        assert_eq!(a(r"Googlebot/2\.1").unwrap(), ["googlebot/2.1"]);
        assert_eq!(a(r"Server~[^~,/\r\n]*/").unwrap(), ["server~"]);
        assert_eq!(a("(?i)powershell").unwrap(), ["powershell"]);
        assert_eq!(
            a(r"/owa/auth/(?:[wx]\.js|Current/themes/resources/)").unwrap(),
            ["/owa/auth/"]
        );
        assert_eq!(
            a(r"/ecp/(?:[a-z0-9]{1,3}\.js|auth/w\.js|main\.css|default\.flt)").unwrap(),
            ["/ecp/"]
        );
        assert_eq!(
            a(r"/owa/[^ ,]*(?:powershell|%[57]0owershell|%25[57]0owershell)").unwrap(),
            ["0owershell", "powershell"]
        );
        // A percent-encoded form of a letter is summarised by its `%`.
        assert_eq!(
            a("(?:x|(?:%|%25)(?:7|%37)(?:8|%38))(?:y|(?:%|%25)(?:7|%37)(?:9|%39))").unwrap(),
            ["%", "xy"]
        );
        assert_eq!(a(".*"), None);
        assert_eq!(a("a|b"), None);
        assert_eq!(a("(?:abc)?"), None);
    }

    #[test]
    fn candidates_are_the_lines_a_pattern_matches() {
        let f = BlockFilter::new(&[
            r"Server~[^~,/\r\n]*/",
            r"/owa/[^ ,]*powershell",
            "%",
            r"abc\d",
            "xyz",
        ]);
        let hay = b"a,b\n#Fields: x\nx,SERVER~ex/,y\nserver~,no\n/owa/x\npowershell\n/OWA/a/PowerShell\r\nz%\nabc,xyZ\nabc,xy\n";
        let mut folded = vec![0; hay.len()];
        let mut out = Vec::new();
        f.candidates(hay, &mut folded, &mut Vec::new(), &mut out);
        let lines: Vec<&[u8]> = out
            .iter()
            .map(|&s| {
                let e = memchr::memchr(b'\n', &hay[s..]).map_or(hay.len(), |i| s + i);
                &hay[s..e]
            })
            .collect();
        assert_eq!(
            lines,
            [
                &b"#Fields: x"[..],
                b"x,SERVER~ex/,y",
                b"/OWA/a/PowerShell\r",
                b"z%",
                b"abc,xyZ"
            ]
        );
    }

    /// Timing harness (not a test): `PF_DIR=dir PF_PATTERNS=file cargo test --release -p
    /// exhunt-sources prefilter::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        let (Ok(dir), Ok(pats)) = (std::env::var("PF_DIR"), std::env::var("PF_PATTERNS")) else {
            return;
        };
        let pats = std::fs::read_to_string(pats).unwrap();
        let pats: Vec<&str> = pats.lines().filter(|l| !l.is_empty()).collect();
        let mut data = Vec::new();
        for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
            if e.file_type().is_file() {
                data.push(std::fs::read(e.path()).unwrap());
            }
        }
        let f = BlockFilter::new(&pats);
        let mut folded = vec![0; 2 << 20];
        let (mut hits, mut out) = (Vec::new(), Vec::new());
        let cpu = || {
            let st = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let f: Vec<i64> = st
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
        };
        let c0 = cpu();
        let t = std::time::Instant::now();
        let mut n = 0;
        let mut bytes = 0;
        for d in &data {
            for chunk in d.chunks(1 << 20) {
                f.candidates(chunk, &mut folded, &mut hits, &mut out);
                n += out.len();
                bytes += chunk.len();
            }
        }
        let e = t.elapsed();
        let c = (cpu() - c0) as f64 / 100.0;
        eprintln!(
            "{n} candidates, {bytes} bytes, {e:?}, cpu {c:.2} s, {:.0} MB/s of cpu",
            bytes as f64 / 1e6 / c
        );
    }
}
