//! The scan engine: inventory → classify → read with prefilters → check → correlate → judge.
//!
//! Files are processed in parallel on the engine's own rayon pool (`ScanOptions::threads`); a
//! worker never prints: it returns a [`FileOutcome`] and bumps the shared [`Progress`] counters,
//! which the binary draws. Memory per worker is one read block plus one line, whatever the file
//! size; what grows with the input is only the findings list (capped per rule) and the coverage
//! ledger.
//!
//! One file per stage: this module holds the options, the progress counters and the engine's
//! API; `load` builds the engine (rule packs, feeds, Sigma, YARA beside the walk, the checks of
//! `crate::catalogue`, the worker pool); `server` runs one server in stages (walk, first pass,
//! second pass, judgement); `ledger` folds what the files gave into the coverage and caps
//! findings per rule; `webroots` finds the served folders; `read` opens and reads one item
//! (logs, EVTX, exports, one large log on all cores); `facts` judges a file looked at whole
//! (hashes, YARA, page analysis); `helpers` the rest.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use exhunt_model::{
    ArtefactKind, BuildSeen, Cause, Coverage, Finding, KindCoverage, Problem, SCHEMA_VERSION,
    ScanResult, ScanSettings, ServerResult, SuppressedCount, Timestamp, ToolInfo, VerdictKind,
};
use exhunt_rules::{RulePack, RulesError};
use exhunt_sources::decode::{TextEncoding, utf8_reader};
use exhunt_sources::inventory::io_reason;
use exhunt_sources::open::Recognised;
use exhunt_sources::webroots::not_an_application;
use exhunt_sources::{
    Classification, Item, ItemSource, Limits, LogFormat, LogReader, Opener, ReadStats, Record,
    Schema, SchemaCheck, Visit, classify, inventory_with,
};
use rayon::prelude::*;

use crate::check::{Emitter, LineCheck};
use crate::events::EventChecker;
use crate::files::{FileFacts, FileJudge, YaraHit};
use crate::webshell::WebShellRequests;
use crate::{story, verdict};

/// Findings stored per rule and server; more are counted, not stored.
pub const MAX_FINDINGS_PER_RULE: usize = 1000;

/// Why a file was not opened.
const NOT_OPENED: &str = "not opened: neither its name nor its place suggests a log, dump or web file (--deep reads every file)";

/// Plain logs at least this large are read in chunks on every thread (see `Engine::read_big`).
const BIG_FILE: u64 = 64 << 20;

/// Size of a chunk of a large log.
const CHUNK: u64 = 16 << 20;

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
    /// Worker threads of the engine's own pool; `None` for one per core.
    pub threads: Option<usize>,
}

/// Why an engine could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The built-in rule pack did not load (a build of exhunt with broken rules).
    #[error("loading the built-in rules: {0}")]
    Rules(#[from] RulesError),
    /// The worker threads could not be started.
    #[error("starting {threads} worker threads: {source}")]
    Threads {
        /// Threads asked for (0: one per core).
        threads: usize,
        /// What the thread pool said.
        source: rayon::ThreadPoolBuildError,
    },
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

/// What workers keep from one batch of a parallel pass to the next. rayon's `map_init` makes a
/// new state per batch, and a pass over many small files has many batches per thread: a new
/// worker each time zeroed a fresh 4 MiB read buffer and reopened archives (issue 15). The read
/// buffer and the open archives are kept; a YARA scanner cannot move between threads and is made
/// per batch, as before.
struct Workers(std::sync::Mutex<Vec<(Opener, Vec<u8>)>>);

impl Workers {
    fn new() -> Self {
        Workers(std::sync::Mutex::new(Vec::new()))
    }

    /// A worker with a kept buffer and opener, or new ones; they come back when the batch ends.
    fn lend<'e>(&self) -> Lent<'_, 'e> {
        let (opener, scratch) = self
            .0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default();
        Lent {
            pool: self,
            worker: Worker {
                opener,
                scratch,
                ..Worker::default()
            },
        }
    }
}

/// A worker lent to one batch.
struct Lent<'p, 'e> {
    pool: &'p Workers,
    worker: Worker<'e>,
}

impl Drop for Lent<'_, '_> {
    fn drop(&mut self) {
        let kept = (
            std::mem::take(&mut self.worker.opener),
            std::mem::take(&mut self.worker.scratch),
        );
        if let Ok(mut v) = self.pool.0.lock() {
            v.push(kept);
        }
    }
}

/// What happened to one file.
#[derive(Debug)]
pub struct FileOutcome {
    /// Index of the item in the inventory.
    pub item: usize,
    /// Kind, when claimed.
    pub kind: Option<ArtefactKind>,
    /// Why it was skipped, when it was.
    pub skipped: Option<Problem>,
    /// Reading statistics, when read.
    pub stats: Option<ReadStats>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Problems (unreadable, binary, …) outside the reader's own.
    pub problems: Vec<Problem>,
    /// An EVTX file left for the calling thread (see `Engine::read_evtx_item`).
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
    /// The engine's own worker threads: every parallel pass runs here, never on a global pool
    /// the embedding program may use for something else.
    pool: rayon::ThreadPool,
    #[cfg(feature = "yara")]
    yara: YaraSlot,
}

impl Engine {
    /// The rule pack in use.
    pub fn pack(&self) -> &RulePack {
        &self.pack
    }

    /// Rule ids the engine's checks can emit (for the catalogue test).
    pub fn rule_ids(&self) -> Vec<&'static str> {
        crate::catalogue::rule_ids(&self.main.checks)
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
}

mod facts;
mod helpers;
mod ledger;
mod load;
#[cfg(feature = "yara")]
use load::YaraSlot;
mod read;
mod server;
mod webroots;

use helpers::*;

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
            let o = engine.process(&engine.main, i, item, &mut w, None, None);
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
