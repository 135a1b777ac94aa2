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
use exhunt_sources::webroots::not_an_application;
use exhunt_sources::{
    Classification, Item, ItemSource, Limits, LogFormat, LogReader, Opener, ReadStats, Record,
    Schema, SchemaCheck, Visit, classify, inventory_with,
};
use rayon::prelude::*;

use crate::check::{Emitter, LineCheck};
use crate::events::EventChecker;
use crate::files::{FileFacts, FileJudge, YaraHit};
use crate::ioc::{HafniumIps, HafniumUserAgents};
use crate::proxylogon::{
    BackEndCookie, EcpVirtualDirectory, IisRequestPatterns, OabDownloadPath, ServerInfoAnchor,
};
use crate::webshell::{KnownShellRequests, UrlSource, WebShellRequests, url_of_written_path};
use crate::{story, verdict};

/// Findings stored per rule and server; more are counted, not stored.
pub const MAX_FINDINGS_PER_RULE: usize = 1000;

/// Why a file was not opened.
const NOT_OPENED: &str = "not opened: neither its name nor its place suggests a log, dump or web file (--deep reads every file)";

/// Plain logs at least this large are read in chunks on every thread (see `Engine::read_big`).
const BIG_FILE: u64 = 64 << 20;

/// Size of a chunk of a large log.
const CHUNK: u64 = 16 << 20;

/// Bytes of a file read to recognise it.
const HEAD: usize = 8192;

/// Largest zip member read into memory for YARA (plain files are memory-mapped by yara-x
/// instead); a larger member is hashed but not YARA-scanned, and the ledger says so.
const MAX_MEMBER_SCAN: u64 = 64 << 20;

/// Largest EVTX zip member read into memory (the parser needs to seek); Windows caps a log at
/// 4 GiB, triage collections rarely ship logs over a few hundred megabytes.
const MAX_EVTX_MEMBER: u64 = 2 << 30;

/// Largest plain file whose bytes are kept from the hashing read for the YARA scan.
const KEEP_FOR_YARA: u64 = 4 << 20;

/// Largest file whose content is hashed and YARA-scanned. Web shells are kilobytes; a larger file
/// in a web root still gets its name and magic checked, and the ledger says its content was not.
pub const MAX_CONTENT: u64 = 256 << 20;

/// Progress counters, updated by workers and read by the display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files to look at.
    pub files_total: AtomicU64,
    /// Files done.
    pub files_done: AtomicU64,
    /// Bytes read so far.
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
    /// Look at every file, not only web roots, dumps and staged archives.
    pub deep: bool,
    /// External YARA rule folders or files (`--yara`).
    pub yara: Vec<PathBuf>,
    /// User IOC feeds (`--ioc`).
    pub ioc: Vec<PathBuf>,
    /// Sigma rule folders or files (`--sigma`).
    pub sigma: Vec<PathBuf>,
}

/// The format each kind is read with; `None` for kinds this version recognises but does not read.
pub fn format_of(kind: ArtefactKind) -> Option<LogFormat> {
    match kind {
        ArtefactKind::HttpProxyLog | ArtefactKind::EcpServerLog | ArtefactKind::RpsHttpLog => {
            Some(LogFormat::ExchangeCsv)
        }
        ArtefactKind::IisLog => Some(LogFormat::W3c),
        ArtefactKind::OabGeneratorLog => Some(LogFormat::Text),
        ArtefactKind::Evtx
        | ArtefactKind::EventExport
        | ArtefactKind::WebFile
        | ArtefactKind::IisConfig
        | ArtefactKind::MemoryDump
        | ArtefactKind::Archive
        | ArtefactKind::File => None,
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
struct Worker<'e> {
    opener: Opener,
    scratch: Vec<u8>,
    #[cfg(feature = "yara")]
    yara: Option<yara_x::Scanner<'e>>,
    #[cfg(not(feature = "yara"))]
    _rules: std::marker::PhantomData<&'e ()>,
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
    /// An EVTX file left for the calling thread (see [`Engine::read_evtx_item`]).
    pub deferred: bool,
    /// Emergency mitigations found in a configuration file.
    pub mitigations: Vec<exhunt_model::Mitigation>,
}

/// The scan engine; build once, scan many targets.
pub struct Engine {
    pack: RulePack,
    main: CheckSet,
    files: FileJudge,
    opts: ScanOptions,
    progress: Arc<Progress>,
    rules_info: exhunt_model::RulesInfo,
    rule_dirs: Vec<PathBuf>,
    events: Arc<EventChecker>,
    #[cfg(feature = "yara")]
    yara: YaraSlot,
}

/// YARA rules being compiled on a thread of their own, then kept.
#[cfg(feature = "yara")]
struct YaraSlot {
    cell: std::sync::OnceLock<exhunt_rules::yara::YaraRules>,
    pending: std::sync::Mutex<Option<std::thread::JoinHandle<exhunt_rules::yara::YaraRules>>>,
    external: Vec<PathBuf>,
}

#[cfg(feature = "yara")]
impl YaraSlot {
    fn get(&self) -> &exhunt_rules::yara::YaraRules {
        self.cell.get_or_init(|| {
            let handle = self.pending.lock().ok().and_then(|mut p| p.take());
            match handle.map(|h| h.join()) {
                Some(Ok(rules)) => rules,
                // The compiling thread failed (a bug of exhunt): compile here instead, so that
                // the failure shows where it happens.
                _ => exhunt_rules::yara::compile(&self.external),
            }
        })
    }
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
        let t0 = std::time::Instant::now();
        let mut pack = RulePack::builtin()?;
        let mut rules_info = exhunt_model::RulesInfo {
            builtin_rules: pack.rules().len(),
            ..Default::default()
        };
        let mut rule_dirs = Vec::new();
        for feed in &opts.ioc {
            let r = exhunt_rules::feeds::load(feed);
            rules_info.ioc_feeds.push(exhunt_model::FeedInfo {
                path: feed.display().to_string(),
                format: r.format.clone(),
                hashes: r.hashes.len(),
                unused: r.unused.iter().map(|(k, v)| format!("{v} × {k}")).collect(),
                errors: r.errors.clone(),
            });
            pack.add_hashes(r.hashes);
            rule_dirs.push(feed.canonicalize().unwrap_or_else(|_| feed.clone()));
        }
        rules_info.hash_iocs = pack.hash_count();
        #[cfg(feature = "yara")]
        let yara = {
            // Compiling the rules (tens of milliseconds for the built-in pack, seconds for a big
            // public set) runs beside the walk; the first file that needs YARA waits for it.
            for y in &opts.yara {
                rule_dirs.push(y.canonicalize().unwrap_or_else(|_| y.clone()));
            }
            let external = opts.yara.clone();
            YaraSlot {
                cell: std::sync::OnceLock::new(),
                pending: std::sync::Mutex::new(Some(std::thread::spawn(move || {
                    exhunt_rules::yara::compile(&external)
                }))),
                external: opts.yara.clone(),
            }
        };
        #[cfg(not(feature = "yara"))]
        if !opts.yara.is_empty() {
            rules_info.yara_rejected.push(exhunt_model::RejectedRule {
                file: opts
                    .yara
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: "this exhunt was built without the `yara` feature".into(),
            });
        }
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
            Box::new(KnownShellRequests::new(&pack.webshell_paths)),
            Box::new(crate::proxyshell::ProxyShellRequests),
            Box::new(crate::proxyshell::RpsForeignClient),
        ];
        let files = FileJudge::new(&pack);
        let mut sigma = exhunt_rules::sigma::SigmaSet::builtin();
        for dir in &opts.sigma {
            sigma.load(dir);
        }
        rules_info.sigma_rules = sigma.len();
        rules_info.sigma_files = sigma.files.clone();
        rules_info.sigma_rejected = sigma.rejected.clone();
        rule_dirs.extend(sigma.rule_dirs.iter().cloned());
        let events = Arc::new(EventChecker::new(
            Arc::new(sigma),
            pack.rules(),
            opts.since,
            opts.until,
        ));
        let mut checks = checks;
        if events.sigma().has_web() {
            checks.push(Box::new(crate::sigmaweb::SigmaWeb::new(events.clone())));
        }
        let main = CheckSet::new(checks, opts.limits);
        tracing::debug!(
            "rules loaded in {:?} (YARA compiling in the background)",
            t0.elapsed()
        );
        Ok(Engine {
            pack,
            main,
            files,
            opts,
            progress: Arc::new(Progress::default()),
            rules_info,
            rule_dirs,
            events,
            #[cfg(feature = "yara")]
            yara,
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
        v.extend(crate::files::RULE_IDS);
        v.extend(crate::iisconfig::RULE_IDS);
        v.extend(crate::behaviour::RULE_IDS);
        v.extend(exhunt_rules::sigma::BUILTIN.iter().map(|(id, _)| *id));
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
        let servers: Vec<ServerResult> = targets.iter().flat_map(|t| self.scan_server(t)).collect();
        let verdict = VerdictKind::worst(servers.iter().map(|s| s.verdict));
        ScanResult {
            schema_version: SCHEMA_VERSION.to_string(),
            tool: ToolInfo {
                name: "exhunt".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            started,
            finished: Utc::now(),
            settings: self.settings(),
            verdict,
            rules: exhunt_model::RulesInfo {
                fired: self.fired_rules(&servers),
                ..self.rules_info()
            },
            servers,
        }
    }

    /// The settings a verdict depends on, as the result records them.
    fn settings(&self) -> ScanSettings {
        ScanSettings {
            since: self.opts.since,
            until: self.opts.until,
            exchange_path: self.opts.exchange_path.clone(),
        }
    }

    /// The catalogue entries of the built-in rules that fired, saved with the result so that a
    /// report rendered later shows the rule text the scan used, and renderers need no rule pack.
    fn fired_rules(&self, servers: &[ServerResult]) -> Vec<exhunt_model::RuleMeta> {
        let mut ids: Vec<&str> = servers
            .iter()
            .flat_map(|s| s.findings.iter().map(|f| f.rule_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.pack.rule(id).cloned())
            .collect()
    }

    /// What the rule packs and feeds loaded (for the binary's warnings).
    /// What the IOC feeds and Sigma rules loaded, without waiting for YARA (whose fields are
    /// empty here).
    pub fn rules_info_loaded(&self) -> &exhunt_model::RulesInfo {
        &self.rules_info
    }

    /// What every rule pack and feed loaded; waits for the YARA rules to be compiled when they
    /// are not yet.
    pub fn rules_info(&self) -> exhunt_model::RulesInfo {
        #[allow(unused_mut)]
        let mut info = self.rules_info.clone();
        #[cfg(feature = "yara")]
        {
            let y = self.yara.get();
            info.yara_rules = y.rule_count;
            info.yara_files = y.files.clone();
            info.yara_rejected = y
                .rejected
                .iter()
                .map(|r| exhunt_model::RejectedRule {
                    file: r.file.clone(),
                    reason: r.reason.clone(),
                })
                .collect();
        }
        info
    }

    /// Whether an item lies in a folder rules or feeds were loaded from (never evidence).
    fn in_rule_dir(&self, item: &Item) -> bool {
        if self.rule_dirs.is_empty() {
            return false;
        }
        let path = match &item.source {
            ItemSource::File(p) => p.as_path(),
            ItemSource::ZipMember { archive, .. } => archive.as_path(),
        };
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.rule_dirs.iter().any(|d| canon.starts_with(d))
    }

    fn scan_server(&self, target: &std::path::Path) -> Vec<ServerResult> {
        let deep = self.opts.deep;
        // The same rule `collect` lists files by (exhunt_sources::locations).
        let unopened = move |c: &[String]| exhunt_sources::classify::left_unopened(c, deep);
        let t0 = std::time::Instant::now();
        let inv = inventory_with(target, &self.opts.limits, &unopened);
        tracing::debug!(
            "inventory: {} files seen, {} to open, {:?}",
            inv.files_seen,
            inv.items.len(),
            t0.elapsed()
        );
        let (web_roots, web_kind) = self.web_roots(&inv.items);
        self.progress
            .files_total
            .fetch_add(inv.items.len() as u64, Ordering::Relaxed);
        let outcomes: Vec<FileOutcome> = inv
            .items
            .par_iter()
            .enumerate()
            .map_init(Worker::default, |w, (i, item)| {
                let o = if self.in_rule_dir(item) {
                    FileOutcome {
                        item: i,
                        kind: None,
                        skipped: Some(
                            "rule or IOC folder given with --yara/--ioc: never scanned as evidence"
                                .into(),
                        ),
                        stats: None,
                        findings: Vec::new(),
                        problems: Vec::new(),
                        deferred: false,
                        mitigations: Vec::new(),
                    }
                } else {
                    self.process(&self.main, i, item, w, web_kind[i])
                };
                self.progress.files_done.fetch_add(1, Ordering::Relaxed);
                let read = o.stats.as_ref().map_or(0, |s| s.bytes);
                self.progress.bytes_done.fetch_add(read, Ordering::Relaxed);
                self.progress
                    .findings
                    .fetch_add(o.findings.len() as u64, Ordering::Relaxed);
                o
            })
            .collect();
        tracing::debug!("files processed: {:?} since the walk began", t0.elapsed());
        // EVTX files found by the parallel pass, read here, off the pool (see `process`).
        let mut outcomes = outcomes;
        let mut worker = Worker::default();
        for o in outcomes.iter_mut().filter(|o| o.deferred) {
            let (findings, stats) = self.read_evtx_item(&inv.items[o.item], &mut worker);
            self.progress
                .findings
                .fetch_add(findings.len() as u64, Ordering::Relaxed);
            o.findings = findings;
            o.stats = Some(stats);
            o.deferred = false;
        }

        let mut findings: Vec<Finding> = outcomes
            .iter()
            .flat_map(|o| o.findings.iter().cloned())
            .collect();
        // Process ancestry across every event of this server (crate::behaviour).
        let correlated = self.events.take_correlated();
        findings.extend(correlated.findings);

        // Second pass: requests for the files the chain wrote, and for suspicious web-root files
        // found on disk.
        let mut urls: Vec<(String, UrlSource)> = Vec::new();
        for f in &findings {
            if f.kind.is_log() {
                if let Some(u) = f
                    .entities
                    .file_path
                    .as_deref()
                    .and_then(url_of_written_path)
                {
                    urls.push((u, UrlSource::Chain));
                }
            } else if f.stage >= exhunt_model::Stage::Persistence
                // A file listed only for review (its place, not its content) is not searched
                // for: requests to an intranet page say nothing about a web shell.
                && f.confidence >= exhunt_model::Confidence::Medium
                && let Some(u) = &f.entities.url
            {
                urls.push((u.clone(), UrlSource::Disk));
            }
        }
        urls.sort_by(|a, b| {
            (a.0.to_ascii_lowercase(), a.1 as u8).cmp(&(b.0.to_ascii_lowercase(), b.1 as u8))
        });
        urls.dedup();
        if !urls.is_empty() {
            // IIS logs every request of the site, including files IIS serves itself (the web
            // roots are not proxied), so they are enough. With only chain-written paths, only
            // logs that reach past the earliest write can hold a request for them; a file found
            // on disk has no trustworthy write time (attackers set file times).
            let written_at = if urls.iter().any(|(_, s)| *s == UrlSource::Disk) {
                None
            } else {
                findings
                    .iter()
                    .filter(|f| f.kind.is_log() && f.entities.file_path.is_some())
                    .filter_map(|f| f.timestamp)
                    .min()
            };
            let set = CheckSet::new(
                vec![Box::new(WebShellRequests::new(urls))],
                self.opts.limits,
            );
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
        problems.extend(correlated.notes.into_iter().map(|reason| CoverageEntry {
            path: target.display().to_string(),
            kind: Some(ArtefactKind::Evtx),
            line: None,
            reason,
            evidence_lost: false,
        }));
        let mut builds: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let mut channels: BTreeMap<(String, String), exhunt_model::ChannelCoverage> =
            BTreeMap::new();
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
                checked: true,
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
                for c in &st.channels {
                    let key = (c.host.clone().unwrap_or_default(), c.channel.clone());
                    let e = channels
                        .entry(key)
                        .or_insert_with(|| exhunt_model::ChannelCoverage {
                            channel: c.channel.clone(),
                            files: 0,
                            records: 0,
                            first: None,
                            last: None,
                            host: c.host.clone(),
                        });
                    e.files += 1;
                    e.records += c.records;
                    e.first = min_opt(e.first, c.first);
                    e.last = max_opt(e.last, c.last);
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
            // The cap is for noise (mass scanning, attempts): a finding that shows success or
            // persistence is never dropped, or a real exploit after a thousand failed attempts
            // would vanish from the verdict.
            if f.stage.is_compromise() {
                return true;
            }
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
            web_roots,
            kinds: kinds.into_values().collect(),
            channels: channels.into_values().collect(),
            files_seen: inv.files_seen,
            skipped_folders: inv
                .unopened
                .iter()
                .map(|(folder, files)| exhunt_model::SkippedFolder {
                    folder: folder.clone(),
                    files: *files,
                    reason: NOT_OPENED.into(),
                })
                .collect(),
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
        let mut coverage = coverage;
        let others = split_export_hosts(&name, &mut findings, &mut coverage);
        let fixed = |c, b: &str| self.pack.fixed_for(c, b);
        // One request in two logs is one step; builds and links decide campaigns.
        let proxy_spans: Vec<crate::correlate::ProxySpan> = outcomes
            .iter()
            .filter(|o| o.kind == Some(ArtefactKind::HttpProxyLog))
            .filter_map(|o| {
                let st = o.stats.as_ref()?;
                Some(crate::correlate::ProxySpan::of(
                    &inv.items[o.item].components,
                    st.first,
                    st.last,
                ))
            })
            .collect();
        crate::correlate::refine(
            &mut findings,
            &crate::correlate::Context {
                proxy_spans: &proxy_spans,
                builds: &builds_seen,
                fixed: &fixed,
            },
        );
        let story = story::build(&findings);
        let mut verdicts =
            verdict::judge(&findings, &coverage, &builds_seen, &fixed, &self.settings());
        let mitigations: Vec<exhunt_model::Mitigation> = outcomes
            .iter()
            .flat_map(|o| o.mitigations.iter().cloned())
            .collect();
        verdict::note_mitigations(&mut verdicts, &mitigations);
        let worst = VerdictKind::worst(verdicts.iter().map(|v| v.verdict));
        let mut out = vec![ServerResult {
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
            mitigations,
        }];
        for (host, mut findings, coverage) in others {
            crate::correlate::refine(
                &mut findings,
                &crate::correlate::Context {
                    proxy_spans: &[],
                    builds: &[],
                    fixed: &fixed,
                },
            );
            let story = story::build(&findings);
            let verdicts = verdict::judge(&findings, &coverage, &[], &fixed, &self.settings());
            out.push(ServerResult {
                name: host.clone(),
                targets: vec![format!(
                    "{} (events of host {host} in event exports)",
                    target.display()
                )],
                verdict: VerdictKind::worst(verdicts.iter().map(|v| v.verdict)),
                verdicts,
                story,
                findings,
                suppressed: Vec::new(),
                coverage,
                mitigations: Vec::new(),
            });
        }
        out
    }

    /// The folders IIS serves in this target (spec §5): the virtual directories of every
    /// `applicationHost.config` found, the folders holding a `web.config`, and `inetpub`. Returns
    /// their coverage and, per item, `Some(WebFile)` for a script below one of them that its path
    /// alone would not claim, so that it is read without `--deep`.
    fn web_roots(
        &self,
        items: &[Item],
    ) -> (
        Vec<exhunt_model::WebRootCoverage>,
        Vec<Option<ArtefactKind>>,
    ) {
        use exhunt_sources::webroots::{RootSource, WebRoots, is_server_script};
        let mut roots = WebRoots::default();
        let mut opener = Opener::default();
        for item in items {
            let name = item.components.last().map(String::as_str).unwrap_or("");
            if name == "applicationhost.config" {
                let mut text = Vec::new();
                let read = opener
                    .open(item, &self.opts.limits)
                    .and_then(|s| s.take(KEEP_FOR_YARA).read_to_end(&mut text));
                if read.is_ok() {
                    roots.add_config(&item.display, &crate::pagecode::decode_text(&text));
                }
            } else if name == "web.config" && !not_an_application(&item.components) {
                let folder = item
                    .display
                    .rfind(['/', '\\', '!'])
                    .map_or(item.display.as_str(), |i| &item.display[..i])
                    .to_string();
                roots.add_web_config(&folder, &item.components);
            }
        }
        let mut counts = vec![0u64; roots.roots.len()];
        let mut inetpub = 0u64;
        let kinds = items
            .iter()
            .map(|item| {
                let c = &item.components;
                if !is_server_script(c) {
                    return None;
                }
                let root = roots.root_of(c);
                let under_inetpub = WebRoots::under_inetpub(c);
                match root {
                    Some(r) => counts[r] += 1,
                    None if under_inetpub => inetpub += 1,
                    None => return None,
                }
                // Paths the classifier already claims keep their kind (logs, old web roots).
                matches!(classify(c, b"", "", false), Classification::Skipped(_))
                    .then_some(ArtefactKind::WebFile)
            })
            .collect();
        let mut cov: Vec<exhunt_model::WebRootCoverage> = roots
            .roots
            .iter()
            .zip(&counts)
            .map(|(r, &scripts)| exhunt_model::WebRootCoverage {
                folder: r.physical.clone(),
                site: r.site.clone(),
                url: r.url.clone(),
                source: match &r.source {
                    RootSource::IisConfig(p) => p.clone(),
                    RootSource::WebConfig => "web.config".into(),
                    RootSource::Inetpub => "inetpub".into(),
                },
                scripts,
            })
            .collect();
        if inetpub > 0 {
            cov.push(exhunt_model::WebRootCoverage {
                folder: "inetpub".into(),
                site: None,
                url: None,
                source: "inetpub (scripts outside every configured site)".into(),
                scripts: inetpub,
            });
        }
        (cov, kinds)
    }

    /// Reads one item with a check set. `known` skips classification (second pass).
    fn process<'e>(
        &'e self,
        set: &CheckSet,
        index: usize,
        item: &Item,
        worker: &mut Worker<'e>,
        known: Option<ArtefactKind>,
    ) -> FileOutcome {
        let opener = &mut worker.opener;
        let mut out = FileOutcome {
            item: index,
            kind: None,
            skipped: None,
            stats: None,
            findings: Vec::new(),
            problems: Vec::new(),
            deferred: false,
            mitigations: Vec::new(),
        };
        let path_kind = match classify(&item.components, b"", "", false) {
            Classification::Claimed(k) => Some(k),
            Classification::Skipped(_) => None,
        };
        if known.is_none()
            && path_kind.is_none()
            && !self.opts.deep
            && !exhunt_sources::classify::worth_sniffing(&item.components)
        {
            out.skipped = Some(NOT_OPENED.into());
            return out;
        }
        // A file that cannot be opened or read loses evidence if it looks like a log.
        let lost =
            path_kind.is_some() || item.components.last().is_some_and(|n| n.ends_with(".log"));
        let fail = |mut out: FileOutcome, reason: String| {
            out.kind = path_kind;
            out.problems.push(CoverageEntry {
                path: item.display.clone(),
                kind: path_kind,
                line: None,
                reason,
                evidence_lost: lost,
            });
            out
        };
        let mut stream = match opener.open(item, &self.opts.limits) {
            Ok(s) => s,
            Err(e) => return fail(out, format!("cannot open: {}", io_reason(&e))),
        };
        let mut head = Vec::with_capacity(HEAD);
        if let Err(e) = (&mut stream).take(HEAD as u64).read_to_end(&mut head) {
            return fail(out, format!("cannot read: {}", io_reason(&e)));
        }
        let mut enc = sniff(&head);
        let mut gz_kind = None;
        if known.is_none() && head.starts_with(&[0x1f, 0x8b]) {
            // A gzip-compressed file: logs and event exports are often shipped that way. What is
            // inside decides; a compressed log is read through the decoder, never unpacked to disk.
            let mut comps = item.components.clone();
            if let Some(last) = comps.last_mut()
                && let Some(stem) = last.strip_suffix(".gz")
            {
                *last = stem.to_string();
            }
            let raw_head = head.clone();
            let mut gz: Box<dyn Read + '_> = Box::new(flate2::read::MultiGzDecoder::new(
                Cursor::new(std::mem::take(&mut head)).chain(stream),
            ));
            let mut inner = Vec::with_capacity(HEAD);
            if let Err(e) = (&mut gz).take(HEAD as u64).read_to_end(&mut inner) {
                return fail(
                    out,
                    format!("gzip file cannot be decompressed: {}", io_reason(&e)),
                );
            }
            let inner_enc = sniff(&inner);
            let text = if inner_enc == TextEncoding::Binary {
                String::new()
            } else {
                decode_head(&inner, inner_enc)
            };
            match classify(&comps, &inner, &text, false) {
                Classification::Claimed(k) if k.is_log() && k != ArtefactKind::Evtx => {
                    gz_kind = Some(k);
                    head = inner;
                    enc = inner_enc;
                }
                _ => {
                    // Not a log inside: judged as the compressed file it is.
                    head = raw_head;
                }
            }
            stream = gz;
        }
        let kind = match (known, gz_kind) {
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => {
                // Binary content carries no log directives: skip decoding it.
                let head_text = if enc == TextEncoding::Binary {
                    String::new()
                } else {
                    decode_head(&head, enc)
                };
                match classify(&item.components, &head, &head_text, self.opts.deep) {
                    Classification::Claimed(k) => k,
                    Classification::Skipped(reason) => {
                        out.skipped = Some(reason);
                        return out;
                    }
                }
            }
        };
        out.kind = Some(kind);
        if !kind.is_log() {
            drop(stream);
            let facts_out = self.file_facts(item, kind, head, worker);
            out.findings = facts_out.0;
            out.stats = Some(facts_out.1);
            out.problems.extend(facts_out.2);
            out.mitigations = facts_out.3;
            return out;
        }
        if kind == ArtefactKind::Evtx {
            drop(stream);
            if rayon::current_thread_index().is_some() {
                // The EVTX parser runs its chunks on the rayon pool and waits for them: it must
                // not wait on a pool thread (every thread could end up waiting). The calling
                // thread reads these files after the parallel pass.
                out.deferred = true;
                return out;
            }
            let (findings, stats) = self.read_evtx_item(item, worker);
            out.findings = findings;
            out.stats = Some(stats);
            return out;
        }
        if kind == ArtefactKind::EventExport {
            let chained: Box<dyn Read + '_> = Box::new(Cursor::new(head).chain(stream));
            let mut text = utf8_reader(chained, enc);
            let display = item.display.clone();
            let events = &self.events;
            let read = exhunt_sources::export::read_export(
                &mut text,
                &|channel, id| events.wants(channel, id),
                &mut |ev, line, offset| {
                    let found =
                        events.check_at(ev, &display, line, offset, ArtefactKind::EventExport);
                    (!found.is_empty()).then_some(found)
                },
            );
            out.findings = read.results.into_iter().flatten().collect();
            out.stats = Some(read.stats);
            return out;
        }
        if format_of(kind).is_none() {
            out.skipped = Some(format!("{kind}: recognised, not read by this version"));
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
        if let ItemSource::File(path) = &item.source
            && gz_kind.is_none()
            && matches!(enc, TextEncoding::Utf8 | TextEncoding::Utf8Bom)
            && rayon::current_num_threads() > 1
            && item.metadata().0 >= BIG_FILE
            && let Some((findings, stats)) = self.read_big(path, item, enc, kind, set, kr)
        {
            out.findings = findings;
            out.stats = Some(stats);
            return out;
        }
        let chained: Box<dyn Read + '_> = Box::new(Cursor::new(head).chain(stream));
        let mut text = utf8_reader(chained, enc);
        let mut visitor = FileVisitor {
            kind,
            set,
            checks: &kr.checks,
            emitter: Emitter::new(&self.pack, &item.display, self.opts.since, self.opts.until),
        };
        let stats = kr
            .reader
            .read_with(&mut text, &mut visitor, &mut worker.scratch);
        out.findings = visitor.emitter.findings;
        out.stats = Some(stats);
        out
    }

    /// Reads one large plain log on every thread of the pool: chunks split at line starts are
    /// surveyed for the directives they pass on (`#Fields:`, `#Date:`), then read in parallel,
    /// each starting in the state a sequential read would have there; findings and statistics
    /// are joined in file order, so the result is the sequential read's. `None` when the file
    /// cannot be reopened (the sequential path then reports why).
    fn read_big(
        &self,
        path: &std::path::Path,
        item: &Item,
        enc: TextEncoding,
        kind: ArtefactKind,
        set: &CheckSet,
        kr: &KindReader,
    ) -> Option<(Vec<Finding>, ReadStats)> {
        let skip = if enc == TextEncoding::Utf8Bom { 3 } else { 0 };
        let mut f = std::fs::File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        let chunks = exhunt_sources::reader::split_lines(&mut f, skip, len, CHUNK).ok()?;
        let open = |start: u64, end: u64| -> Option<std::io::Take<std::fs::File>> {
            use std::io::Seek;
            let mut f = std::fs::File::open(path).ok()?;
            f.seek(std::io::SeekFrom::Start(start)).ok()?;
            Some(f.take(end - start))
        };
        let surveys: Option<Vec<exhunt_sources::Survey>> = chunks
            .par_iter()
            .map_init(Vec::new, |scratch, &(s, e)| {
                open(s, e).map(|mut r| kr.reader.survey(&mut r, scratch))
            })
            .collect();
        let seeds = kr.reader.seeds(&surveys?);
        let parts: Option<Vec<(Vec<Finding>, exhunt_sources::ChunkStats)>> = chunks
            .par_iter()
            .zip(seeds.par_iter())
            .enumerate()
            .map_init(Vec::new, |scratch, (i, (&(s, e), seed))| {
                let mut r = open(s, e)?;
                let mut visitor = FileVisitor {
                    kind,
                    set,
                    checks: &kr.checks,
                    emitter: Emitter::new(
                        &self.pack,
                        &item.display,
                        self.opts.since,
                        self.opts.until,
                    ),
                };
                let cs =
                    kr.reader
                        .read_chunk(&mut r, seed, s - skip, i == 0, &mut visitor, scratch);
                Some((visitor.emitter.findings, cs))
            })
            .collect();
        let (findings, parts): (Vec<_>, Vec<_>) = parts?.into_iter().unzip();
        let (stats, bases) = kr.reader.merge(parts);
        let findings = findings
            .into_iter()
            .zip(bases)
            .flat_map(|(fs, base)| {
                fs.into_iter().map(move |mut f| {
                    f.evidence.line += base;
                    f
                })
            })
            .collect();
        Some((findings, stats))
    }

    /// Reads one EVTX file (or zip member) with the event rules. The parser renders chunks on the
    /// rayon pool when called off the pool, inline when called from a pool thread.
    fn read_evtx_item(&self, item: &Item, worker: &mut Worker<'_>) -> (Vec<Finding>, ReadStats) {
        let (size, _) = item.metadata();
        let lost = |reason: String| {
            let mut st = ReadStats {
                bytes: 0,
                ..ReadStats::default()
            };
            st.problems.push(exhunt_sources::Problem {
                line: None,
                reason,
                evidence_lost: true,
            });
            (Vec::new(), st)
        };
        let threads = if rayon::current_thread_index().is_some() {
            1
        } else {
            rayon::current_num_threads()
        };
        let checker = self.events.clone();
        let wanted = self.events.clone();
        let wants: exhunt_sources::evtx::Wants =
            Arc::new(move |channel, _provider, id| wanted.wants(channel, id));
        let display = item.display.clone();
        let on_event = move |ev: &exhunt_sources::WinEvent| {
            let f = checker.check(ev, &display);
            (!f.is_empty()).then_some(f)
        };
        let read = match &item.source {
            ItemSource::File(p) => match std::fs::File::open(p) {
                Ok(f) => exhunt_sources::evtx::read_evtx(f, size, threads, wants, on_event),
                Err(e) => return lost(format!("cannot open: {}", io_reason(&e))),
            },
            ItemSource::ZipMember { .. } => {
                if size > MAX_EVTX_MEMBER {
                    return lost(format!(
                        "EVTX archive member of {size} bytes, more than the {MAX_EVTX_MEMBER}-byte limit for reading one from a zip: extract it and scan the file"
                    ));
                }
                let mut buf = Vec::with_capacity(size as usize);
                match worker.opener.open(item, &self.opts.limits) {
                    Ok(mut r) => {
                        if let Err(e) = (&mut r).take(MAX_EVTX_MEMBER).read_to_end(&mut buf) {
                            return lost(format!("cannot read: {}", io_reason(&e)));
                        }
                    }
                    Err(e) => return lost(format!("cannot open: {}", io_reason(&e))),
                }
                let n = buf.len() as u64;
                exhunt_sources::evtx::read_evtx(Cursor::new(buf), n, threads, wants, on_event)
            }
        };
        self.progress
            .bytes_done
            .fetch_add(read.stats.bytes, Ordering::Relaxed);
        (read.results.into_iter().flatten().collect(), read.stats)
    }

    /// Gathers the facts of a file (hashes, YARA, times, attributes) in one read and judges them.
    fn file_facts<'e>(
        &'e self,
        item: &Item,
        kind: ArtefactKind,
        head: Vec<u8>,
        worker: &mut Worker<'e>,
    ) -> (
        Vec<Finding>,
        ReadStats,
        Vec<CoverageEntry>,
        Vec<exhunt_model::Mitigation>,
    ) {
        use sha1::Digest as _;
        let mut problems = Vec::new();
        let (size, modified) = item.metadata();
        let problem = |reason: String, lost: bool| CoverageEntry {
            path: item.display.clone(),
            kind: Some(kind),
            line: None,
            reason,
            evidence_lost: lost,
        };
        let want_yara = matches!(kind, ArtefactKind::WebFile | ArtefactKind::File);
        let is_member = matches!(item.source, ItemSource::ZipMember { .. });
        // Only the hash kinds some IOC uses: three digests of every web file cost more than
        // the YARA scan.
        let (want256, want1, want5) = self.pack.hash_kinds();
        let mut sha256 = want256.then(sha2::Sha256::new);
        let mut sha1 = want1.then(sha1::Sha1::new);
        let mut md5 = want5.then(md5::Md5::new);
        // Bytes kept for YARA: zip members (which cannot be mapped), and small plain files, which
        // are read here for the hashes anyway (web shells are kilobytes): a second open and map
        // per file cost more than the copy.
        let keep_limit = if is_member {
            MAX_MEMBER_SCAN
        } else {
            KEEP_FOR_YARA
        };
        // IIS configuration is judged as text: kept like a file for YARA.
        let want_text = kind == ArtefactKind::IisConfig;
        let mut keep: Option<Vec<u8>> = ((want_yara || want_text) && size <= keep_limit)
            .then(|| Vec::with_capacity(size as usize));
        let mut bytes = 0u64;
        if size > MAX_CONTENT {
            problems.push(problem(
                format!("{} bytes, more than the {MAX_CONTENT}-byte limit for content checks: name and magic checked, content not hashed or YARA-scanned", size),
                false,
            ));
            let facts = FileFacts {
                display: &item.display,
                components: &item.components,
                size: item.size,
                head: &head,
                modified: modified.and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
                ..FileFacts::default()
            };
            let findings = self.files.judge(&self.pack, kind, &facts);
            let mut stats = ReadStats {
                bytes: head.len() as u64,
                records: 1,
                ..ReadStats::default()
            };
            for p in &problems {
                stats.problems.push(exhunt_sources::Problem {
                    line: None,
                    reason: p.reason.clone(),
                    evidence_lost: p.evidence_lost,
                });
            }
            return (findings, stats, Vec::new(), Vec::new());
        }
        // Re-open: the head was read from a stream the caller dropped.
        match worker.opener.open(item, &self.opts.limits) {
            Ok(mut stream) => {
                let buf = &mut worker.scratch;
                if buf.len() < 64 * 1024 {
                    buf.resize(64 * 1024, 0);
                }
                loop {
                    match stream.read(&mut buf[..64 * 1024]) {
                        Ok(0) => break,
                        Ok(n) => {
                            let chunk = &buf[..n];
                            if let Some(h) = &mut sha256 {
                                h.update(chunk);
                            }
                            if let Some(h) = &mut sha1 {
                                h.update(chunk);
                            }
                            if let Some(h) = &mut md5 {
                                h.update(chunk);
                            }
                            bytes += n as u64;
                            if let Some(k) = &mut keep {
                                if !is_member && k.len() as u64 + n as u64 > KEEP_FOR_YARA {
                                    // Grew since it was listed: map it instead.
                                    keep = None;
                                } else if k.len() as u64 + n as u64 > MAX_MEMBER_SCAN {
                                    keep = None;
                                    problems.push(problem(
                                        format!("archive member larger than {MAX_MEMBER_SCAN} bytes: hashed, not YARA-scanned"),
                                        false,
                                    ));
                                } else {
                                    k.extend_from_slice(chunk);
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            problems
                                .push(problem(format!("read stopped: {}", io_reason(&e)), true));
                            break;
                        }
                    }
                }
            }
            Err(e) => problems.push(problem(format!("cannot open: {}", io_reason(&e)), true)),
        }
        let complete = problems.iter().all(|p| !p.evidence_lost);
        if is_member && want_yara && size > MAX_MEMBER_SCAN {
            problems.push(problem(
                format!(
                    "archive member larger than {MAX_MEMBER_SCAN} bytes: hashed, not YARA-scanned"
                ),
                false,
            ));
        }
        let yara = if want_yara && complete {
            self.yara_scan(item, keep.as_deref(), worker, &mut problems)
        } else {
            Vec::new()
        };
        let (hidden, system) = match &item.source {
            ItemSource::File(p) => exhunt_sources::platform::hidden_system(p),
            ItemSource::ZipMember { .. } => (None, None),
        };
        // Server code of pages, handlers and web services: what it can do.
        let name = item.components.last().map(String::as_str).unwrap_or("");
        let page = match keep.as_deref() {
            Some(bytes) if want_yara && complete && crate::pagecode::is_code_file(name) => {
                Some(crate::pagecode::analyse(name, bytes))
            }
            _ => None,
        };
        let facts = FileFacts {
            display: &item.display,
            components: &item.components,
            size: bytes.max(size),
            head: &head,
            sha256: sha256
                .filter(|_| complete)
                .map(|h| hex::encode(h.finalize())),
            sha1: sha1.filter(|_| complete).map(|h| hex::encode(h.finalize())),
            md5: md5.filter(|_| complete).map(|h| hex::encode(h.finalize())),
            yara,
            modified: modified.and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
            hidden,
            system,
            page: page.as_ref(),
        };
        let mut findings = self.files.judge(&self.pack, kind, &facts);
        let mut mitigations = Vec::new();
        if want_text {
            match keep.as_deref() {
                Some(text) if complete => {
                    let text = String::from_utf8_lossy(text);
                    findings.extend(crate::iisconfig::judge(
                        &self.pack,
                        &item.display,
                        &text,
                        facts.modified,
                    ));
                    mitigations = crate::iisconfig::mitigations(&item.display, &text);
                }
                _ => problems.push(problem(
                    format!("configuration larger than {KEEP_FOR_YARA} bytes or not read completely: its virtual directories were not checked"),
                    true,
                )),
            }
        }
        let stats = ReadStats {
            bytes,
            records: 1,
            ..ReadStats::default()
        };
        let mut stats = stats;
        for p in &problems {
            stats.problems.push(exhunt_sources::Problem {
                line: None,
                reason: p.reason.clone(),
                evidence_lost: p.evidence_lost,
            });
        }
        (findings, stats, Vec::new(), mitigations)
    }

    #[cfg(feature = "yara")]
    fn yara_scan<'e>(
        &'e self,
        item: &Item,
        bytes: Option<&[u8]>,
        worker: &mut Worker<'e>,
        problems: &mut Vec<CoverageEntry>,
    ) -> Vec<YaraHit> {
        let rules = self.yara.get();
        // One scanner per worker, borrowing the rules compiled once for the engine.
        let scanner = worker.yara.get_or_insert_with(|| {
            let mut sc = yara_x::Scanner::new(&rules.rules);
            sc.set_timeout(std::time::Duration::from_secs(60));
            sc
        });
        let name = item.components.last().cloned().unwrap_or_default();
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_string())
            .unwrap_or_default();
        let _ = scanner.set_global("filename", name.as_str());
        let _ = scanner.set_global("filepath", item.display.as_str());
        let _ = scanner.set_global("extension", ext.as_str());
        let result = match (&item.source, bytes) {
            (ItemSource::File(_), Some(b)) => scanner.scan(b),
            (ItemSource::File(p), None) => scanner.scan_file(p),
            (ItemSource::ZipMember { .. }, Some(b)) => scanner.scan(b),
            (ItemSource::ZipMember { .. }, None) => return Vec::new(),
        };
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                problems.push(CoverageEntry {
                    path: item.display.clone(),
                    kind: None,
                    line: None,
                    reason: format!("YARA scan failed: {e}"),
                    evidence_lost: true,
                });
                return Vec::new();
            }
        };
        results
            .matching_rules()
            .map(|r| {
                let mut hit = YaraHit {
                    namespace: r.namespace().to_string(),
                    rule: r.identifier().to_string(),
                    description: None,
                    author: None,
                    severity: None,
                    builtin: r.namespace() == exhunt_rules::yara::BUILTIN_NAMESPACE,
                };
                for (k, v) in r.metadata() {
                    let text = match v {
                        yara_x::MetaValue::String(s) => Some(s.to_string()),
                        yara_x::MetaValue::Integer(i) => Some(i.to_string()),
                        _ => None,
                    };
                    match (k, text) {
                        ("description", Some(t)) => hit.description = Some(t),
                        ("author", Some(t)) => hit.author = Some(t),
                        ("severity", Some(t)) => hit.severity = crate::files::severity_word(&t),
                        ("score", Some(t)) => {
                            hit.severity = t.parse::<u32>().ok().map(crate::files::severity_score)
                        }
                        _ => {}
                    }
                }
                hit
            })
            .collect()
    }

    #[cfg(not(feature = "yara"))]
    fn yara_scan(
        &self,
        _item: &Item,
        _bytes: Option<&[u8]>,
        _worker: &mut Worker<'_>,
        _problems: &mut Vec<CoverageEntry>,
    ) -> Vec<YaraHit> {
        Vec::new()
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
/// Event exports often hold the events of several servers: each host other than the target's
/// own becomes a server of its own, with its events' findings, its channels and the export files'
/// problems, so that each gets its own story and verdict.
fn split_export_hosts(
    main: &str,
    findings: &mut Vec<Finding>,
    coverage: &mut Coverage,
) -> Vec<(String, Vec<Finding>, Coverage)> {
    // `EX01` (the logs' server name) and `EX01.contoso.local` (an event's Computer) are one
    // server: host names are compared by their first label.
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    let main_short = short(main);
    let hosts: std::collections::BTreeSet<String> = coverage
        .channels
        .iter()
        .filter_map(|c| c.host.clone())
        .filter(|h| short(h) != main_short)
        .collect();
    let export = coverage.kind(ArtefactKind::EventExport).cloned();
    let mut out = Vec::new();
    for host in hosts {
        let is_host = |f: &Finding| {
            f.kind == ArtefactKind::EventExport
                && f.entities
                    .server
                    .as_deref()
                    .is_some_and(|s| short(s) == short(&host))
        };
        let mine: Vec<Finding> = findings.iter().filter(|f| is_host(f)).cloned().collect();
        findings.retain(|f| !is_host(f));
        let (chs, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut coverage.channels)
            .into_iter()
            .partition(|c| c.host.as_deref().is_some_and(|h| short(h) == short(&host)));
        coverage.channels = rest;
        let mut kc = KindCoverage {
            kind: ArtefactKind::EventExport,
            files: chs.iter().map(|c| c.files).max().unwrap_or(0),
            files_complete: 0,
            bytes: 0,
            records: chs.iter().map(|c| c.records).sum(),
            first: chs.iter().filter_map(|c| c.first).min(),
            last: chs.iter().filter_map(|c| c.last).max(),
            checked: true,
        };
        let complete = export.as_ref().is_some_and(|e| e.files_complete == e.files);
        kc.files_complete = if complete { kc.files } else { 0 };
        let problems = coverage
            .problems
            .iter()
            .filter(|p| p.kind == Some(ArtefactKind::EventExport))
            .cloned()
            .collect();
        out.push((
            host,
            mine,
            Coverage {
                kinds: vec![kc],
                channels: chs,
                files_seen: 0,
                skipped: Vec::new(),
                skipped_folders: Vec::new(),
                web_roots: Vec::new(),
                problems,
            },
        ));
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file listed by the walk and gone before it is read (an attacker or a log rotation
    /// deleting it during the scan) is a coverage problem, not a crash.
    #[test]
    fn files_that_vanish_or_change_during_the_scan() {
        let t = tempfile::tempdir().unwrap();
        let web = t
            .path()
            .join("inetpub")
            .join("wwwroot")
            .join("aspnet_client");
        std::fs::create_dir_all(&web).unwrap();
        std::fs::write(web.join("gone.aspx"), "<%@ Page Language=\"C#\" %>").unwrap();
        let log = t.path().join("u_ex210303.log");
        std::fs::write(&log, "#Fields: date time cs-method cs-uri-stem sc-status\n2021-03-03 00:00:01 GET /owa/ 200\n").unwrap();
        let engine = Engine::new(ScanOptions::default()).unwrap();
        let inv = exhunt_sources::inventory(t.path(), &engine.opts.limits);
        assert_eq!(inv.items.len(), 2);
        std::fs::remove_file(web.join("gone.aspx")).unwrap();
        // The log grows between the walk and the read: read as it is now, no problem.
        std::fs::write(&log, "#Fields: date time cs-method cs-uri-stem sc-status\n2021-03-03 00:00:01 GET /owa/ 200\n2021-03-03 00:00:02 POST /ecp/y.js 200\n").unwrap();
        let mut w = Worker::default();
        for (i, item) in inv.items.iter().enumerate() {
            let o = engine.process(&engine.main, i, item, &mut w, None);
            if item.display.ends_with("gone.aspx") {
                assert!(
                    o.problems
                        .iter()
                        .any(|p| p.reason.contains("vanished during the scan") && p.evidence_lost),
                    "{:?}",
                    o.problems
                );
            } else {
                assert_eq!(
                    o.findings.len(),
                    1,
                    "the line written after the walk is read"
                );
                assert_eq!(o.stats.unwrap().records, 2);
            }
        }
    }
}
