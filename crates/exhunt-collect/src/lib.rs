//! `exhunt collect`: a triage package of an Exchange server's evidence, from a live server or a
//! mounted image, that `exhunt scan` reads as it would read the server.
//!
//! Why it is built this way:
//! - What to take comes from the scanner's own knowledge ([`select`]): the same walk, the same
//!   classification, the same web roots, one location list (`exhunt_sources::locations`).
//! - The package is a zip written as a stream (data descriptors, zip64 where a file needs it):
//!   one buffer per file, never the package in memory, and its SHA-256 is computed on the bytes
//!   as they are written, with no second read.
//! - Every file's original path, size, times, SHA-256 and the way it was read go into the
//!   manifest (`exhunt_sources::package`), and so does every file that could not be taken and
//!   why: a package that cannot say what it lacks would make the scan of it lie.
//! - The source is never changed: read-only opens through the platform module (no access-time
//!   update on Linux where permitted, no link followed), no link followed out of the target by
//!   the walk, and no package written inside the target.
//! - A file that grows while it is copied (a live IIS log) is copied up to the size it had when
//!   opened, so the copy is a consistent prefix and the loop ends; the manifest says it grew.

#![deny(missing_docs)]

mod select;
mod verify;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use exhunt_sources::locations::Take;
use exhunt_sources::package::{
    CollectedWith, FORMAT, FileEntry, MANIFEST_NAME, Manifest, NotCollected,
};
use exhunt_sources::platform;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

pub use select::{Chosen, Selection, select};
pub use verify::{VerifyReport, verify};

/// Default content limit for memory dumps and archives (beyond it: metadata only).
pub const DEFAULT_MAX_DUMP: u64 = 2 << 30;

/// Copy buffer.
const BUF: usize = 256 << 10;

/// Errors that stop a collection (problems with single files do not: they are listed).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// No target and no live server here.
    #[error(
        "there is no live Exchange server to collect from on this system: name a TARGET (a mounted image or a folder laid out like C:\\)"
    )]
    NoLiveSystem,
    /// The target cannot be read.
    #[error("target {path} cannot be read: {source}")]
    Target {
        /// Target.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// The target is not a folder.
    #[error("target {0} is not a folder: collect reads a live system, a mounted image or a folder")]
    NotAFolder(String),
    /// The package would be written inside the evidence.
    #[error("refusing to write the package {package} inside the evidence {target}")]
    InsideTarget {
        /// Package.
        package: String,
        /// Target folder.
        target: String,
    },
    /// The package exists already.
    #[error("{0} exists: a package is never overwritten (remove it or choose another name)")]
    Exists(String),
    /// Writing the package failed.
    #[error("writing the package {path}: {source}")]
    Write {
        /// Package.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// The zip writer failed.
    #[error("writing the package {path}: {source}")]
    Zip {
        /// Package.
        path: String,
        /// Cause.
        source: zip::result::ZipError,
    },
    /// Not a package, or unreadable (verify).
    #[error("{path} is not a readable exhunt package: {reason}")]
    NotAPackage {
        /// Package.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Options of a collection.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// A mounted image or a folder laid out like `C:\`; `None`: the live system.
    pub target: Option<PathBuf>,
    /// The package to write.
    pub output: PathBuf,
    /// Skip logs last written before this time.
    pub since: Option<DateTime<Utc>>,
    /// Largest sum of file contents in the package, bytes.
    pub max_size: Option<u64>,
    /// Content limit for memory dumps and archives, bytes.
    pub max_dump_size: u64,
    /// Also collect message tracking logs.
    pub message_tracking: bool,
    /// Deflate level (1 fast … 9 small).
    pub level: i64,
}

impl CollectOptions {
    /// Options with defaults for a target and a package.
    pub fn new(target: Option<PathBuf>, output: PathBuf) -> CollectOptions {
        CollectOptions {
            target,
            output,
            since: None,
            max_size: None,
            max_dump_size: DEFAULT_MAX_DUMP,
            message_tracking: false,
            level: 1,
        }
    }
}

/// Progress counters, read by the binary's display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files to copy or hash (known after the selection).
    pub files_total: AtomicU64,
    /// Files done.
    pub files_done: AtomicU64,
    /// Bytes to read.
    pub bytes_total: AtomicU64,
    /// Bytes read.
    pub bytes_done: AtomicU64,
}

/// What a collection did.
#[derive(Debug)]
pub struct Summary {
    /// The package.
    pub package: PathBuf,
    /// Its SHA-256, hex.
    pub package_sha256: String,
    /// Its size in bytes.
    pub package_bytes: u64,
    /// Files whose content is in the package.
    pub files: u64,
    /// Bytes of content in the package (before compression).
    pub bytes: u64,
    /// Files recorded by metadata only.
    pub metadata_only: u64,
    /// Files seen by the walk.
    pub files_seen: u64,
    /// What is not in the package, and why.
    pub not_collected: Vec<NotCollected>,
}

impl Summary {
    /// Whether every piece of evidence selected is in the package (exit code 0, else 3).
    pub fn complete(&self) -> bool {
        !self.not_collected.iter().any(|n| n.evidence_lost)
    }
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> CollectError + '_ {
    move |source| CollectError::Write {
        path: path.display().to_string(),
        source,
    }
}

fn zip_err(path: &Path) -> impl Fn(zip::result::ZipError) -> CollectError + '_ {
    move |source| CollectError::Zip {
        path: path.display().to_string(),
        source,
    }
}

/// The folders to walk, with their member prefixes, and the folders the package must not be
/// written in.
/// Folders to walk, each with the prefix of its members.
type Roots = Vec<(PathBuf, String)>;

fn roots(target: Option<&Path>) -> Result<(Roots, Vec<PathBuf>), CollectError> {
    match target {
        Some(t) => {
            let abs = std::path::absolute(t).map_err(|source| CollectError::Target {
                path: t.display().to_string(),
                source,
            })?;
            let meta = std::fs::metadata(&abs).map_err(|source| CollectError::Target {
                path: t.display().to_string(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(CollectError::NotAFolder(t.display().to_string()));
            }
            Ok((vec![(abs.clone(), String::new())], vec![abs]))
        }
        None => {
            let roots = platform::live_roots().ok_or(CollectError::NoLiveSystem)?;
            // On a live server the package may go to the system drive, but not into a place
            // the collection reads.
            let mut forbidden: Vec<PathBuf> = roots
                .iter()
                .filter(|(_, prefix)| !prefix.is_empty())
                .map(|(r, _)| r.clone())
                .collect();
            if let Some(ex) = platform::live_exchange_path() {
                forbidden.push(ex);
            }
            if let Some((sys, _)) = roots.first() {
                for sub in ["inetpub", "Windows", "ProgramData", "root"] {
                    forbidden.push(sys.join(sub));
                }
            }
            forbidden.push(std::env::temp_dir());
            Ok((roots, forbidden))
        }
    }
}

fn check_output(output: &Path, forbidden: &[PathBuf]) -> Result<PathBuf, CollectError> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.canonicalize().map_err(write_err(output))?;
    for f in forbidden {
        let f = f.canonicalize().unwrap_or_else(|_| f.clone());
        if dir.starts_with(&f) {
            return Err(CollectError::InsideTarget {
                package: output.display().to_string(),
                target: f.display().to_string(),
            });
        }
    }
    if output.exists() {
        return Err(CollectError::Exists(output.display().to_string()));
    }
    let name = output.file_name().unwrap_or(output.as_os_str());
    Ok(dir.join(name))
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type PackageWriter = zip::ZipWriter<zip::write::StreamWriter<Hashing<BufWriter<File>>>>;

fn system_time(t: io::Result<std::time::SystemTime>) -> Option<DateTime<Utc>> {
    t.ok().map(DateTime::<Utc>::from)
}

/// Collects the evidence of `opts.target` into `opts.output`.
pub fn collect(opts: &CollectOptions, progress: &Progress) -> Result<Summary, CollectError> {
    let started = Utc::now();
    let (roots, forbidden) = roots(opts.target.as_deref())?;
    let output = check_output(&opts.output, &forbidden)?;
    let partial = {
        let mut p = output.clone().into_os_string();
        p.push(".partial");
        PathBuf::from(p)
    };
    let sel = select(&roots, opts.message_tracking, &output);
    tracing::debug!(
        "selection: {} files seen, {} chosen",
        sel.files_seen,
        sel.chosen.len()
    );

    let mut manifest = Manifest {
        format: FORMAT.into(),
        collector: format!("exhunt {}", env!("CARGO_PKG_VERSION")),
        collected_on: platform::host_name(),
        host_name: if opts.target.is_none() {
            platform::host_name()
        } else {
            None
        },
        target: match &opts.target {
            Some(_) => roots[0].0.display().to_string(),
            None => "live system".into(),
        },
        exchange_install_path: if opts.target.is_none() {
            platform::live_exchange_path().map(|p| p.display().to_string())
        } else {
            None
        }
        .or(sel.exchange_path.clone()),
        exchange_build: None,
        started,
        finished: started,
        options: CollectedWith {
            since: opts.since,
            max_size: opts.max_size,
            max_dump_size: opts.max_dump_size,
            message_tracking: opts.message_tracking,
        },
        files: Vec::new(),
        metadata_only: Vec::new(),
        not_collected: sel
            .problems
            .iter()
            .map(|p| NotCollected {
                original: p.path.clone(),
                what: "file or folder".into(),
                reason: p.reason.clone(),
                evidence_lost: p.evidence_lost && !system_only(&p.path),
            })
            .collect(),
    };

    // Plan: what is left out by --since, and what does not fit in --max-size (the most
    // important first: configurations and scripts, event logs, Exchange logs, IIS logs, other
    // logs, dumps and archives; newest first within each).
    let mut plan: Vec<(Chosen, Take, u64)> = Vec::new();
    for c in sel.chosen {
        let meta = match std::fs::symlink_metadata(&c.path) {
            Ok(m) => m,
            Err(e) => {
                manifest.not_collected.push(not_read(&c, &e));
                continue;
            }
        };
        let modified = system_time(meta.modified());
        if let (Some(since), Some(m), true) = (opts.since, modified, c.wanted.log)
            && m < since
        {
            manifest.not_collected.push(NotCollected {
                original: c.display.clone(),
                what: c.wanted.what.into(),
                reason: format!("log last written {m}, before --since {since}"),
                evidence_lost: false,
            });
            continue;
        }
        let take = match c.wanted.take {
            Take::Bounded if meta.len() > opts.max_dump_size => Take::Metadata,
            Take::Bounded => Take::Content,
            t => t,
        };
        plan.push((c, take, meta.len()));
    }
    if let Some(max) = opts.max_size {
        let mut order: Vec<usize> = (0..plan.len()).collect();
        let mtime = |i: usize| {
            std::fs::symlink_metadata(&plan[i].0.path)
                .ok()
                .and_then(|m| m.modified().ok())
        };
        let times: Vec<_> = (0..plan.len()).map(mtime).collect();
        order.sort_by(|&a, &b| {
            plan[a]
                .0
                .wanted
                .rank
                .cmp(&plan[b].0.wanted.rank)
                .then(times[b].cmp(&times[a]))
        });
        let mut used = 0u64;
        let mut keep = vec![true; plan.len()];
        for i in order {
            let (c, take, size) = &plan[i];
            if *take != Take::Content {
                continue;
            }
            if used + size > max {
                keep[i] = false;
                manifest.not_collected.push(NotCollected {
                    original: c.display.clone(),
                    what: c.wanted.what.into(),
                    reason: format!(
                        "did not fit: {size} bytes more than the {} left of --max-size {max}",
                        max - used
                    ),
                    evidence_lost: true,
                });
            } else {
                used += size;
            }
        }
        let mut k = keep.into_iter();
        plan.retain(|_| k.next().unwrap_or(true));
    }
    progress
        .files_total
        .store(plan.len() as u64, Ordering::Relaxed);
    progress
        .bytes_total
        .store(plan.iter().map(|p| p.2).sum(), Ordering::Relaxed);

    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(write_err(&partial))?;
    let mut zw: PackageWriter = zip::ZipWriter::new_stream(Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    });
    let mut buf = vec![0u8; BUF];
    let mut builds: Vec<(Option<DateTime<Utc>>, String)> = Vec::new();
    let export_dir = partial.with_extension("exports");
    for (c, take, _) in &plan {
        let r = copy_one(
            &mut zw,
            c,
            *take,
            opts.level,
            &mut buf,
            progress,
            &export_dir,
        )
        .map_err(zip_err(&partial))?;
        match r {
            Copied::Ok(entry, note) => {
                if let Some(n) = note {
                    manifest.not_collected.push(n);
                }
                let (entry, build) = *entry;
                if let Some(b) = build {
                    builds.push((entry.modified, b));
                }
                if entry.member.is_some() {
                    manifest.files.push(entry);
                } else {
                    manifest.metadata_only.push(entry);
                }
            }
            Copied::Failed(n) => manifest.not_collected.push(n),
        }
        progress.files_done.fetch_add(1, Ordering::Relaxed);
    }
    let _ = std::fs::remove_dir_all(&export_dir);
    builds.sort();
    manifest.exchange_build = builds.pop().map(|(_, b)| b);
    manifest.finished = Utc::now();

    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| write_err(&partial)(io::Error::other(e)))?;
    let opts_json = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(opts.level))
        .large_file(json.len() as u64 >= u32::MAX as u64 / 2);
    let opts_json = match zip_time(manifest.finished) {
        Some(t) => opts_json.last_modified_time(t),
        None => opts_json,
    };
    zw.start_file(MANIFEST_NAME, opts_json)
        .map_err(zip_err(&partial))?;
    zw.write_all(&json).map_err(write_err(&partial))?;
    let stream = zw.finish().map_err(zip_err(&partial))?;
    let mut hashing = stream.into_inner();
    hashing.flush().map_err(write_err(&partial))?;
    let package_bytes = hashing.bytes;
    let package_sha256 = hex::encode(hashing.hash.finalize());
    let file = hashing
        .inner
        .into_inner()
        .map_err(|e| write_err(&partial)(e.into_error()))?;
    file.sync_all().map_err(write_err(&partial))?;
    drop(file);
    std::fs::rename(&partial, &output).map_err(write_err(&output))?;
    let sha_path = sha256_path(&output);
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(&sha_path, format!("{package_sha256}  {name}\n"))
        .map_err(write_err(&sha_path))?;

    Ok(Summary {
        package: output,
        package_sha256,
        package_bytes,
        files: manifest.files.len() as u64,
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        metadata_only: manifest.metadata_only.len() as u64,
        files_seen: sel.files_seen,
        not_collected: manifest.not_collected,
    })
}

/// Folders Windows keeps from administrators (restore points, the recycle bin): a live walk
/// always meets them, and no Exchange or IIS evidence lives there, so they do not make a
/// collection incomplete (they are still listed).
fn system_only(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("system volume information") || lower.contains("$recycle.bin")
}

/// `PACKAGE.zip.sha256`.
pub fn sha256_path(package: &Path) -> PathBuf {
    let mut p = package.as_os_str().to_owned();
    p.push(".sha256");
    PathBuf::from(p)
}

enum Copied {
    /// The entry, the Exchange build its head names, and a note for the ledger.
    Ok(Box<(FileEntry, Option<String>)>, Option<NotCollected>),
    Failed(NotCollected),
}

fn not_read(c: &Chosen, e: &io::Error) -> NotCollected {
    let reason = match e.kind() {
        io::ErrorKind::NotFound => "vanished before it could be read".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ if e.raw_os_error() == Some(40) && cfg!(target_os = "linux") => {
            "became a symbolic link during the collection: not followed".to_string()
        }
        _ => format!("cannot read: {e}"),
    };
    NotCollected {
        original: c.display.clone(),
        what: c.wanted.what.into(),
        reason,
        evidence_lost: true,
    }
}

/// Opens a chosen file; an event log the EventLog service holds is exported through the event
/// log API (Windows) into `export_dir`, beside the package.
fn open_chosen(c: &Chosen, export_dir: &Path) -> io::Result<(File, String)> {
    match platform::open_evidence(&c.path) {
        Ok((f, noatime)) => {
            let how = if noatime {
                platform::READ_HOW.to_string()
            } else {
                platform::READ_HOW.replace(
                    ", O_NOATIME where permitted",
                    " (access time may be updated: O_NOATIME not permitted)",
                )
            };
            Ok((f, how))
        }
        Err(e)
            if platform::is_sharing_violation(&e)
                && c.components.last().is_some_and(|n| n.ends_with(".evtx")) =>
        {
            std::fs::create_dir_all(export_dir)?;
            // One export at a time; the folder is removed when the package is written.
            let dest = export_dir.join("event-log-export.evtx");
            let _ = std::fs::remove_file(&dest);
            platform::export_event_log(&c.path, &dest)?;
            let f = File::open(&dest)?;
            Ok((
                f,
                "exported through the event log API (wevtutil epl): the EventLog service holds the file"
                    .into(),
            ))
        }
        Err(e) => Err(e),
    }
}

fn copy_one(
    zw: &mut PackageWriter,
    c: &Chosen,
    take: Take,
    level: i64,
    buf: &mut [u8],
    progress: &Progress,
    export_dir: &Path,
) -> Result<Copied, zip::result::ZipError> {
    #[cfg(test)]
    tests::hook(&c.path, tests::Stage::Open);
    let (file, read_how) = match open_chosen(c, export_dir) {
        Ok(f) => f,
        Err(e) => return Ok(Copied::Failed(not_read(c, &e))),
    };
    // Times from the open file (fstat changes nothing), before the first read.
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Ok(Copied::Failed(not_read(c, &e))),
    };
    if !meta.is_file() {
        return Ok(Copied::Failed(NotCollected {
            original: c.display.clone(),
            what: c.wanted.what.into(),
            reason: "no longer a regular file".into(),
            evidence_lost: true,
        }));
    }
    let size_at_open = meta.len();
    let modified = system_time(meta.modified());
    let mut entry = FileEntry {
        original: c.display.clone(),
        member: None,
        what: c.wanted.what.into(),
        size: 0,
        created: system_time(meta.created()),
        modified,
        accessed: system_time(meta.accessed()),
        sha256: String::new(),
        read: read_how,
        note: None,
    };
    let content = take == Take::Content;
    if content {
        let compressed = c
            .components
            .last()
            .is_some_and(|n| exhunt_sources::locations::is_archive_name(n));
        let mut o = SimpleFileOptions::default()
            .compression_method(if compressed {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            })
            .large_file(size_at_open >= (u32::MAX as u64) - (1 << 20));
        if !compressed {
            o = o.compression_level(Some(level));
        }
        if let Some(t) = modified.and_then(zip_time) {
            o = o.last_modified_time(t);
        }
        zw.start_file(c.member.as_str(), o)?;
        entry.member = Some(c.member.clone());
    }
    #[cfg(test)]
    tests::hook(&c.path, tests::Stage::Read);
    let mut hash = Sha256::new();
    let mut read = 0u64;
    let mut failure = None;
    let mut head = Vec::new();
    let mut limited = (&file).take(size_at_open);
    loop {
        let n = match limited.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let chunk = &buf[..n];
        hash.update(chunk);
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..chunk.len().min(4096 - head.len())]);
        }
        if content {
            zw.write_all(chunk)?;
        }
        read += n as u64;
        progress.bytes_done.fetch_add(n as u64, Ordering::Relaxed);
    }
    entry.size = read;
    entry.sha256 = hex::encode(hash.finalize());
    let after = file.metadata().ok();
    let mut ledger = None;
    if let Some(e) = failure {
        entry.note = Some(format!(
            "read failed after {read} of {size_at_open} bytes: {e}"
        ));
        ledger = Some(NotCollected {
            original: c.display.clone(),
            what: c.wanted.what.into(),
            reason: format!("only {read} of {size_at_open} bytes could be read: {e}"),
            evidence_lost: true,
        });
    } else if read < size_at_open {
        entry.note = Some(format!(
            "shrank during the collection: {size_at_open} bytes when opened, {read} read"
        ));
        ledger = Some(NotCollected {
            original: c.display.clone(),
            what: c.wanted.what.into(),
            reason: format!(
                "shrank while it was read: {size_at_open} bytes when opened, {read} in the package"
            ),
            evidence_lost: true,
        });
    } else if let Some(a) = after {
        if a.len() > size_at_open {
            entry.note = Some(format!(
                "grew during the collection: copied the {size_at_open} bytes it had when opened; {} now",
                a.len()
            ));
        } else if system_time(a.modified()) != modified {
            entry.note = Some(
                "written to during the collection: its content may mix old and new bytes".into(),
            );
        }
    }
    let build = match c.kind {
        Some(k) if k.is_log() && k != exhunt_model::ArtefactKind::IisLog => exchange_build(&head),
        _ => None,
    };
    Ok(Copied::Ok(Box::new((entry, build)), ledger))
}

/// The `#Version:` directive of an Exchange log's head: the server's build when it wrote it.
fn exchange_build(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.lines().take(8).find_map(|l| {
        let v = l.trim_end_matches('\r').strip_prefix("#Version:")?.trim();
        // `15.01.2176.002` → `15.1.2176.2`, the form builds are compared in.
        let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
        let parts = parts?;
        (parts.first() == Some(&15)).then(|| {
            parts
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".")
        })
    })
}

fn zip_time(t: DateTime<Utc>) -> Option<zip::DateTime> {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(t.year()).ok()?;
    zip::DateTime::from_date_and_time(
        year,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .ok()
}

#[cfg(test)]
mod tests;
