//! A probe run: plan the scope, stream the targets, probe them concurrently, hand rows to a
//! sink in completion order.
//!
//! Memory stays flat as the scope grows: a thread expands the specifications into a bounded
//! channel, at most `concurrency` probes are in flight, and each finished row goes straight to
//! the sink. Only the summary (counts) and, with `--resume`, the keys already done are kept.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use exhunt_rules::builds::BuildTable;
use tokio::sync::{Semaphore, mpsc};

use crate::check::{CheckOptions, Checker, invalid_row};
use crate::error::ProbeError;
use crate::http::{Client, Limits, Timeouts};
use crate::limit::Limiter;
use crate::model::{Row, State, Summary};
use crate::targets::{AddrSet, HARD_LIMIT, Input, Item, Shard, Target, for_each_spec};

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Target specifications.
    pub inputs: Vec<Input>,
    /// Ports for specifications without one.
    pub ports: Vec<u16>,
    /// Exclude list.
    pub exclude: AddrSet,
    /// Scope (allow-list); empty: no scope.
    pub scope: AddrSet,
    /// Largest scope accepted without `allow_large`.
    pub max_targets: u128,
    /// Accept scopes larger than `max_targets`.
    pub allow_large: bool,
    /// Probes in flight.
    pub concurrency: usize,
    /// Requests per second in all (0: no limit).
    pub rate: f64,
    /// Requests per second per address (0: no limit).
    pub per_host_rate: f64,
    /// Timeouts of one request.
    pub timeouts: Timeouts,
    /// Upper bound of one target's whole probe.
    pub target_timeout: Duration,
    /// Check options.
    pub check: CheckOptions,
    /// This machine's shard.
    pub shard: Option<Shard>,
    /// Keys already probed (from `--resume`).
    pub done: HashSet<String>,
    /// The User-Agent.
    pub user_agent: String,
    /// Runtime worker threads (0: one per core).
    pub threads: usize,
    /// Names pinned to addresses, asked before DNS.
    pub pinned: Vec<(String, std::net::IpAddr)>,
    /// Whether names not pinned may be looked up in DNS.
    pub dns: bool,
}

/// Where rows go.
pub trait RowSink {
    /// One finished row.
    fn row(&mut self, row: &Row) -> std::io::Result<()>;
    /// The end of the run.
    fn finish(&mut self, summary: &Summary) -> std::io::Result<()>;
}

/// The size of a scope: targets (addresses × ports) and malformed entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSize {
    /// Targets.
    pub targets: u128,
    /// Malformed entries.
    pub invalid: u64,
}

/// Counts the scope without expanding it.
pub fn scope_size(inputs: &[Input], ports: &[u16]) -> Result<ScopeSize, ProbeError> {
    let mut size = ScopeSize::default();
    let nports = ports.len().max(1) as u128;
    for_each_spec(inputs, |item| {
        match item {
            Item::Spec(s) => {
                size.targets = size.targets.saturating_add(s.size().saturating_mul(nports));
            }
            Item::Bad { .. } => size.invalid += 1,
        }
        true
    })?;
    Ok(size)
}

/// Reads the keys of a previous JSONL output for `--resume`, and cuts a last line that a
/// killed run left half-written so that appending starts on a line of its own.
pub fn resume_keys(path: &Path) -> Result<HashSet<String>, ProbeError> {
    let mut keys = HashSet::new();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(source) => {
            return Err(ProbeError::ReadList {
                what: "output to resume",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut reader = std::io::BufReader::new(file);
    let mut good_end = 0u64;
    let mut pos = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ProbeError::ReadList {
                what: "output to resume",
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if line.last() != Some(&b'\n') {
            break;
        }
        good_end = pos;
        if let Ok(row) = serde_json::from_slice::<Row>(&line) {
            keys.insert(row.target);
        }
    }
    if good_end < pos {
        let resume_error = |source| ProbeError::Resume {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(resume_error)?;
        f.set_len(good_end).map_err(resume_error)?;
    }
    Ok(keys)
}

enum Work {
    Target(Target),
    Invalid(String, String),
}

#[derive(Default)]
struct Skips {
    excluded: u64,
    out_of_scope: u64,
    other_shards: u64,
    resumed: u64,
}

/// Runs the probe; rows go to `sink` as they finish.
pub fn run(opts: ProbeOptions, sink: &mut dyn RowSink) -> Result<Summary, ProbeError> {
    let size = scope_size(&opts.inputs, &opts.ports)?;
    if size.targets > HARD_LIMIT {
        return Err(ProbeError::ScopeTooLarge {
            targets: size.targets,
            limit: HARD_LIMIT,
            hard: true,
        });
    }
    if size.targets > opts.max_targets && !opts.allow_large {
        return Err(ProbeError::ScopeTooLarge {
            targets: size.targets,
            limit: opts.max_targets,
            hard: false,
        });
    }
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if opts.threads == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        } else {
            opts.threads
        })
        .enable_all()
        .build()
        .map_err(|e| ProbeError::Start {
            what: "the runtime",
            reason: e.to_string(),
        })?;
    let client = Client::new(opts.user_agent.clone(), Limits::default(), opts.timeouts).map_err(
        |reason| ProbeError::Start {
            what: "the TLS client",
            reason,
        },
    )?;
    let checker = Arc::new(Checker {
        client,
        builds: BuildTable::builtin().map_err(|e| ProbeError::Start {
            what: "the build table",
            reason: e.to_string(),
        })?,
        opts: opts.check.clone(),
        limiter: Arc::new(Limiter::new(opts.rate, opts.per_host_rate)),
        scope: Arc::new(opts.scope.clone()),
        pinned: opts.pinned.clone(),
        dns: opts.dns,
    });

    let (work_tx, mut work_rx) = mpsc::channel::<Work>(opts.concurrency.max(1) * 2);
    let producer_opts = opts.clone();
    let producer = std::thread::spawn(move || produce(&producer_opts, &work_tx));

    let concurrency = opts.concurrency.max(1);
    let target_timeout = opts.target_timeout;
    let mut summary = Summary::default();
    let mut sink_error = None;
    rt.block_on(async {
        let (row_tx, mut row_rx) = mpsc::channel::<Row>(concurrency * 2);
        let sem = Arc::new(Semaphore::new(concurrency));
        let dispatcher = tokio::spawn(async move {
            while let Some(work) = work_rx.recv().await {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                let checker = checker.clone();
                let tx = row_tx.clone();
                tokio::spawn(async move {
                    let row = match work {
                        Work::Invalid(text, reason) => invalid_row(&text, &reason),
                        Work::Target(t) => {
                            match tokio::time::timeout(target_timeout, checker.probe(&t)).await {
                                Ok(r) => r,
                                Err(_) => Row::bare(
                                    t.key(),
                                    t.host.clone(),
                                    t.port,
                                    &t.scheme.to_string(),
                                    State::Indeterminate,
                                    format!("the probe did not finish within {target_timeout:?}"),
                                ),
                            }
                        }
                    };
                    let _ = tx.send(row).await;
                    drop(permit);
                });
            }
        });
        while let Some(row) = row_rx.recv().await {
            summary.add(&row);
            if sink_error.is_none() {
                sink_error = sink.row(&row).err();
            }
        }
        let _ = dispatcher.await;
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    let skips = producer.join().map_err(|_| ProbeError::Reader)??;
    summary.excluded = skips.excluded;
    summary.out_of_scope = skips.out_of_scope;
    summary.other_shards = skips.other_shards;
    summary.resumed = skips.resumed;
    summary.seconds = started.elapsed().as_secs_f64();
    if let Some(e) = sink_error {
        return Err(ProbeError::Output(e));
    }
    sink.finish(&summary).map_err(ProbeError::Output)?;
    Ok(summary)
}

fn produce(opts: &ProbeOptions, tx: &mpsc::Sender<Work>) -> Result<Skips, ProbeError> {
    let mut skips = Skips::default();
    let owned = |key: &str| opts.shard.is_none_or(|s| s.owns(key));
    for_each_spec(&opts.inputs, |item| {
        match item {
            Item::Bad { text, reason } => {
                if !owned(&text) {
                    skips.other_shards += 1;
                } else if opts.done.contains(&text) {
                    skips.resumed += 1;
                } else if tx.blocking_send(Work::Invalid(text, reason)).is_err() {
                    return false;
                }
            }
            Item::Spec(spec) => {
                for t in spec.targets(&opts.ports) {
                    if opts.exclude.contains_target(&t) {
                        skips.excluded += 1;
                        continue;
                    }
                    let outside = t
                        .ip
                        .is_some_and(|ip| !opts.scope.is_empty() && !opts.scope.contains_ip(ip));
                    if outside {
                        skips.out_of_scope += 1;
                        continue;
                    }
                    let key = t.key();
                    if !owned(&key) {
                        skips.other_shards += 1;
                        continue;
                    }
                    if opts.done.contains(&key) {
                        skips.resumed += 1;
                        continue;
                    }
                    if tx.blocking_send(Work::Target(t)).is_err() {
                        return false;
                    }
                }
            }
        }
        true
    })?;
    Ok(skips)
}

/// Writes nothing; for callers that only want the summary.
pub struct NullSink;

impl RowSink for NullSink {
    fn row(&mut self, _row: &Row) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects rows in memory (tests, JSON output).
#[derive(Default)]
pub struct VecSink(pub Vec<Row>);

impl RowSink for VecSink {
    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        self.0.push(row.clone());
        Ok(())
    }
    fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flushes a writer, ignoring a closed pipe (`exhunt probe … | head`).
pub fn flush_quietly(w: &mut dyn Write) -> std::io::Result<()> {
    match w.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
