//! The scan engine: inventory → classify → read with prefilters → check → correlate → judge.
//!
//! Files are processed in parallel on a rayon pool (the caller sets its size); a worker never
//! prints: it returns a [`FileOutcome`] and bumps the shared [`Progress`] counters, which the
//! binary draws. Memory per worker is one read block plus one line, whatever the file size; what
//! grows with the input is only the findings list (capped per rule) and the coverage ledger.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use exhunt_model::{
    ArtefactKind, BuildSeen, Coverage, CoverageEntry, Finding, KindCoverage, SCHEMA_VERSION,
    ScanResult, ScanSettings, ServerResult, SuppressedCount, Timestamp, ToolInfo, VerdictKind,
};
use exhunt_rules::{RulePack, RulesError};
use exhunt_sources::decode::{TextEncoding, sniff, utf8_reader};
use exhunt_sources::inventory::io_reason;
use exhunt_sources::{
    Classification, Item, Limits, LogFormat, LogReader, Opener, ReadStats, Record, Schema,
    SchemaCheck, Visit, classify, inventory,
};
use rayon::prelude::*;

use crate::check::{Emitter, LineCheck};
use crate::ioc::{HafniumIps, HafniumUserAgents};
use crate::proxylogon::{
    BackEndCookie, EcpVirtualDirectory, IisRequestPatterns, OabDownloadPath, ServerInfoAnchor,
};
use crate::webshell::{WebShellRequests, url_of_written_path};
use crate::{story, verdict};

/// Findings stored per rule and server; more are counted, not stored.
pub const MAX_FINDINGS_PER_RULE: usize = 1000;

/// Bytes of a file read to recognise it.
const HEAD: usize = 8192;

/// Progress counters, updated by workers and read by the display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files to look at.
    pub files_total: AtomicU64,
    /// Files done.
    pub files_done: AtomicU64,
    /// Bytes to look at (declared sizes).
    pub bytes_total: AtomicU64,
    /// Bytes done.
    pub bytes_done: AtomicU64,
    /// Findings so far.
    pub findings: AtomicU64,
}

/// Options of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// Only records before this time.
    pub until: Option<Timestamp>,
    /// Exchange install path (as it is on the server, e.g. `D:\Exchange\V15`).
    pub exchange_path: Option<String>,
    /// Resource limits.
    pub limits: Limits,
}

/// The format each kind is read with; `None` for kinds this version recognises but does not read.
pub fn format_of(kind: ArtefactKind) -> Option<LogFormat> {
    match kind {
        ArtefactKind::HttpProxyLog | ArtefactKind::EcpServerLog => Some(LogFormat::ExchangeCsv),
        ArtefactKind::IisLog => Some(LogFormat::W3c),
        ArtefactKind::OabGeneratorLog => Some(LogFormat::Text),
        ArtefactKind::Evtx => None,
    }
}

struct KindReader {
    kind: ArtefactKind,
    reader: LogReader,
    checks: Vec<usize>,
}

/// A set of checks with one prefilter reader per kind.
struct CheckSet {
    checks: Vec<Box<dyn LineCheck>>,
    readers: Vec<KindReader>,
}

impl CheckSet {
    fn new(checks: Vec<Box<dyn LineCheck>>, limits: Limits) -> CheckSet {
        let mut readers = Vec::new();
        for kind in ArtefactKind::ALL {
            let Some(format) = format_of(kind) else {
                continue;
            };
            let idx: Vec<usize> = (0..checks.len())
                .filter(|&i| checks[i].kinds().contains(&kind))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let mut lits: Vec<String> = idx
                .iter()
                .flat_map(|&i| checks[i].prefilter(kind))
                .collect();
            lits.sort();
            lits.dedup();
            let refs: Vec<&str> = lits.iter().map(String::as_str).collect();
            readers.push(KindReader {
                kind,
                reader: LogReader::new(format, &refs, limits),
                checks: idx,
            });
        }
        CheckSet { checks, readers }
    }

    fn reader(&self, kind: ArtefactKind) -> Option<&KindReader> {
        self.readers.iter().find(|r| r.kind == kind)
    }
}

/// What a rayon worker keeps between files.
#[derive(Default)]
struct Worker {
    opener: Opener,
    scratch: Vec<u8>,
}

/// What happened to one file.
#[derive(Debug)]
pub struct FileOutcome {
    /// Index of the item in the inventory.
    pub item: usize,
    /// Kind, when claimed.
    pub kind: Option<ArtefactKind>,
    /// Why it was skipped, when it was.
    pub skipped: Option<String>,
    /// Reading statistics, when read.
    pub stats: Option<ReadStats>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Problems (unreadable, binary, …) outside the reader's own.
    pub problems: Vec<CoverageEntry>,
}

/// The scan engine; build once, scan many targets.
pub struct Engine {
    pack: RulePack,
    main: CheckSet,
    opts: ScanOptions,
    progress: Arc<Progress>,
}

struct FileVisitor<'a> {
    kind: ArtefactKind,
    set: &'a CheckSet,
    checks: &'a [usize],
    emitter: Emitter<'a>,
}

impl Visit for FileVisitor<'_> {
    fn schema(&mut self, schema: &Schema) -> SchemaCheck {
        let mut blind = Vec::new();
        let mut missing_all = Vec::new();
        for &i in self.checks {
            let c = &self.set.checks[i];
            let missing: Vec<&str> = c
                .needs(self.kind)
                .iter()
                .copied()
                .filter(|f| !schema.has(f))
                .collect();
            if !missing.is_empty() {
                blind.push(c.rule_ids()[0]);
                missing_all.extend(missing);
            }
        }
        missing_all.sort();
        missing_all.dedup();
        if blind.is_empty() {
            SchemaCheck::Usable
        } else {
            let reason = format!(
                "column layout lacks {}: {} cannot run on these lines",
                missing_all.join(", "),
                blind.join(", ")
            );
            if blind.len() == self.checks.len() {
                SchemaCheck::Unusable(reason)
            } else {
                SchemaCheck::Partial(reason)
            }
        }
    }

    fn record(&mut self, rec: &Record<'_>) {
        if !self.emitter.in_range(rec) {
            return;
        }
        for &i in self.checks {
            self.set.checks[i].check(self.kind, rec, &mut self.emitter);
        }
    }
}

impl Engine {
    /// Builds the engine with the built-in rule packs.
    pub fn new(opts: ScanOptions) -> Result<Engine, RulesError> {
        let pack = RulePack::builtin()?;
        let exch = opts
            .exchange_path
            .as_ref()
            .map(|p| p.to_ascii_lowercase().replace('/', "\\"));
        let checks: Vec<Box<dyn LineCheck>> = vec![
            Box::new(ServerInfoAnchor),
            Box::new(BackEndCookie),
            Box::new(IisRequestPatterns),
            Box::new(OabDownloadPath {
                exchange_path: exch,
            }),
            Box::new(EcpVirtualDirectory),
            Box::new(HafniumIps::new(pack.hafnium_ips.clone())),
            Box::new(HafniumUserAgents::new(pack.hafnium_user_agents.clone())),
        ];
        let main = CheckSet::new(checks, opts.limits);
        Ok(Engine {
            pack,
            main,
            opts,
            progress: Arc::new(Progress::default()),
        })
    }

    /// The rule pack in use.
    pub fn pack(&self) -> &RulePack {
        &self.pack
    }

    /// Rule ids the engine's checks can emit (for the catalogue test).
    pub fn rule_ids(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .main
            .checks
            .iter()
            .flat_map(|c| c.rule_ids().iter().copied())
            .collect();
        v.extend(WebShellRequests::RULE_IDS);
        v.sort();
        v.dedup();
        v
    }

    /// The prefilter patterns of each log kind (for benchmarks against `rg`).
    pub fn prefilter_literals(&self) -> Vec<(ArtefactKind, Vec<String>)> {
        self.main
            .readers
            .iter()
            .map(|kr| {
                let mut lits: Vec<String> = kr
                    .checks
                    .iter()
                    .flat_map(|&i| self.main.checks[i].prefilter(kr.kind))
                    .collect();
                lits.sort();
                lits.dedup();
                (kr.kind, lits)
            })
            .collect()
    }

    /// Shared progress counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Scans each target as one server.
    pub fn scan(&self, targets: &[PathBuf]) -> ScanResult {
        let started = Utc::now();
        let servers: Vec<ServerResult> = targets.iter().map(|t| self.scan_server(t)).collect();
        let verdict = servers
            .iter()
            .map(|s| s.verdict)
            .max_by_key(|v| v.rank())
            .unwrap_or(VerdictKind::Inconclusive);
        ScanResult {
            schema_version: SCHEMA_VERSION.to_string(),
            tool: ToolInfo {
                name: "exhunt".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            started,
            finished: Utc::now(),
            settings: ScanSettings {
                since: self.opts.since,
                until: self.opts.until,
                exchange_path: self.opts.exchange_path.clone(),
            },
            verdict,
            servers,
        }
    }

    fn scan_server(&self, target: &std::path::Path) -> ServerResult {
        let inv = inventory(target, &self.opts.limits);
        self.progress
            .files_total
            .fetch_add(inv.items.len() as u64, Ordering::Relaxed);
        self.progress.bytes_total.fetch_add(
            inv.items.iter().map(|i| i.size).sum::<u64>(),
            Ordering::Relaxed,
        );
        let outcomes: Vec<FileOutcome> = inv
            .items
            .par_iter()
            .enumerate()
            .map_init(Worker::default, |w, (i, item)| {
                let o = self.process(&self.main, i, item, w, None);
                self.progress.files_done.fetch_add(1, Ordering::Relaxed);
                self.progress
                    .bytes_done
                    .fetch_add(item.size, Ordering::Relaxed);
                self.progress
                    .findings
                    .fetch_add(o.findings.len() as u64, Ordering::Relaxed);
                o
            })
            .collect();

        let mut findings: Vec<Finding> = outcomes
            .iter()
            .flat_map(|o| o.findings.iter().cloned())
            .collect();

        // Second pass: requests for the files the chain wrote.
        let urls: Vec<String> = {
            let mut u: Vec<String> = findings
                .iter()
                .filter_map(|f| f.entities.file_path.as_deref())
                .filter_map(url_of_written_path)
                .collect();
            u.sort();
            u.dedup();
            u
        };
        if !urls.is_empty() {
            let set = CheckSet::new(
                vec![Box::new(WebShellRequests::new(urls))],
                self.opts.limits,
            );
            // IIS logs every request of the site, including files IIS serves itself (the web
            // roots are not proxied), so they are enough; only logs that reach past the earliest
            // write can hold a request for the written file.
            let written_at = findings
                .iter()
                .filter(|f| f.entities.file_path.is_some())
                .filter_map(|f| f.timestamp)
                .min();
            let second: Vec<Finding> = outcomes
                .par_iter()
                .filter(|o| o.kind == Some(ArtefactKind::IisLog))
                .filter(|o| {
                    let last = o.stats.as_ref().and_then(|s| s.last);
                    match (last, written_at) {
                        (Some(l), Some(w)) => l >= w,
                        _ => true,
                    }
                })
                .map_init(Worker::default, |w, o| {
                    self.process(&set, o.item, &inv.items[o.item], w, o.kind)
                        .findings
                })
                .flatten()
                .collect();
            findings.extend(second);
        }

        // Coverage.
        let mut kinds: BTreeMap<ArtefactKind, KindCoverage> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut problems = inv.problems.clone();
        let mut builds: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
        let mut hosts: HashMap<String, usize> = HashMap::new();
        for o in &outcomes {
            let item = &inv.items[o.item];
            problems.extend(o.problems.iter().cloned());
            if let Some(reason) = &o.skipped {
                skipped.push(CoverageEntry {
                    path: item.display.clone(),
                    kind: o.kind,
                    line: None,
                    reason: reason.clone(),
                    evidence_lost: false,
                });
            }
            let Some(kind) = o.kind else { continue };
            let kc = kinds.entry(kind).or_insert(KindCoverage {
                kind,
                files: 0,
                files_complete: 0,
                bytes: 0,
                records: 0,
                first: None,
                last: None,
                checked: format_of(kind).is_some(),
            });
            kc.files += 1;
            if let Some(st) = &o.stats {
                if st.complete() {
                    kc.files_complete += 1;
                }
                kc.bytes += st.bytes;
                kc.records += st.records;
                kc.first = min_opt(kc.first, st.first);
                kc.last = max_opt(kc.last, st.last);
                for p in &st.problems {
                    problems.push(CoverageEntry {
                        path: item.display.clone(),
                        kind: Some(kind),
                        line: p.line,
                        reason: p.reason.clone(),
                        evidence_lost: p.evidence_lost,
                    });
                }
                for (b, t) in &st.versions {
                    let e = builds.entry(normalise_build(b)).or_insert(*t);
                    *e = min_opt(*e, *t);
                }
                if let Some(h) = &st.host {
                    *hosts.entry(h.clone()).or_default() += 1;
                }
            }
        }

        // Findings: time order, capped per rule.
        findings.sort_by(|a, b| {
            (a.timestamp, &a.evidence.path, a.evidence.line, &a.rule_id).cmp(&(
                b.timestamp,
                &b.evidence.path,
                b.evidence.line,
                &b.rule_id,
            ))
        });
        let mut per_rule: HashMap<String, usize> = HashMap::new();
        let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
        findings.retain(|f| {
            let n = per_rule.entry(f.rule_id.clone()).or_default();
            *n += 1;
            if *n > MAX_FINDINGS_PER_RULE {
                *suppressed.entry(f.rule_id.clone()).or_default() += 1;
                false
            } else {
                true
            }
        });

        let coverage = Coverage {
            kinds: kinds.into_values().collect(),
            files_seen: inv.files_seen,
            skipped,
            problems,
        };
        let builds_seen: Vec<BuildSeen> = builds
            .into_iter()
            .map(|(build, first_seen)| {
                let fixed = self.pack.proxylogon_fixed(&build);
                BuildSeen {
                    build,
                    first_seen,
                    fixed,
                }
            })
            .collect();
        let name = hosts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(h, _)| h)
            .unwrap_or_else(|| {
                target
                    .file_name()
                    .map_or(target.display().to_string(), |n| {
                        n.to_string_lossy().into_owned()
                    })
            });
        let story = story::build(&findings);
        let verdicts = verdict::judge(&findings, &coverage, &builds_seen, &self.opts);
        let worst = verdicts
            .iter()
            .map(|v| v.verdict)
            .max_by_key(|v| v.rank())
            .unwrap_or(VerdictKind::Inconclusive);
        ServerResult {
            name,
            targets: vec![target.display().to_string()],
            verdict: worst,
            verdicts,
            story,
            findings,
            suppressed: suppressed
                .into_iter()
                .map(|(rule_id, count)| SuppressedCount { rule_id, count })
                .collect(),
            coverage,
        }
    }

    /// Reads one item with a check set. `known` skips classification (second pass).
    fn process(
        &self,
        set: &CheckSet,
        index: usize,
        item: &Item,
        worker: &mut Worker,
        known: Option<ArtefactKind>,
    ) -> FileOutcome {
        let Worker { opener, scratch } = worker;
        let mut out = FileOutcome {
            item: index,
            kind: None,
            skipped: None,
            stats: None,
            findings: Vec::new(),
            problems: Vec::new(),
        };
        let path_kind = match classify(&item.components, b"", "") {
            Classification::Claimed(k) => Some(k),
            Classification::Skipped(_) => None,
        };
        let mut stream = match opener.open(item, &self.opts.limits) {
            Ok(s) => s,
            Err(e) => {
                out.kind = path_kind;
                out.problems.push(CoverageEntry {
                    path: item.display.clone(),
                    kind: path_kind,
                    line: None,
                    reason: format!("cannot open: {}", io_reason(&e)),
                    evidence_lost: path_kind.is_some()
                        || item.components.last().is_some_and(|n| n.ends_with(".log")),
                });
                return out;
            }
        };
        let mut head = Vec::with_capacity(HEAD);
        if let Err(e) = (&mut stream).take(HEAD as u64).read_to_end(&mut head) {
            out.kind = path_kind;
            out.problems.push(CoverageEntry {
                path: item.display.clone(),
                kind: path_kind,
                line: None,
                reason: format!("cannot read: {}", io_reason(&e)),
                evidence_lost: path_kind.is_some(),
            });
            return out;
        }
        let enc = sniff(&head);
        let kind = match known {
            Some(k) => k,
            None => {
                let head_text = decode_head(&head, enc);
                match classify(&item.components, &head, &head_text) {
                    Classification::Claimed(k) => k,
                    Classification::Skipped(reason) => {
                        out.skipped = Some(reason);
                        return out;
                    }
                }
            }
        };
        out.kind = Some(kind);
        if format_of(kind).is_none() {
            out.skipped = Some(format!(
                "{kind}: recognised, not read by this version (event-log checks come in a later part)"
            ));
            return out;
        }
        if enc == TextEncoding::Binary {
            out.problems.push(CoverageEntry {
                path: item.display.clone(),
                kind: Some(kind),
                line: None,
                reason: format!(
                    "binary content in a file that looks like {kind}: not a text log, not read"
                ),
                evidence_lost: true,
            });
            return out;
        }
        let Some(kr) = set.reader(kind) else {
            return out;
        };
        let chained: Box<dyn Read + '_> = Box::new(Cursor::new(head).chain(stream));
        let mut text = utf8_reader(chained, enc);
        let mut visitor = FileVisitor {
            kind,
            set,
            checks: &kr.checks,
            emitter: Emitter::new(&self.pack, &item.display, self.opts.since, self.opts.until),
        };
        let stats = kr.reader.read_with(&mut text, &mut visitor, scratch);
        out.findings = visitor.emitter.findings;
        out.stats = Some(stats);
        out
    }
}

fn decode_head(head: &[u8], enc: TextEncoding) -> String {
    match enc {
        TextEncoding::Utf16Le { .. } => encoding_rs::UTF_16LE.decode(head).0.into_owned(),
        TextEncoding::Utf16Be { .. } => encoding_rs::UTF_16BE.decode(head).0.into_owned(),
        _ => String::from_utf8_lossy(head).into_owned(),
    }
}

/// `15.01.2176.002` → `15.1.2176.2`.
fn normalise_build(b: &str) -> String {
    match exhunt_rules::parse_build(b) {
        Some([a, b2, c, d]) => format!("{a}.{b2}.{c}.{d}"),
        None => b.to_string(),
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}
