//! Apply and rollback: the only code in the project that changes a system.
//!
//! The order of every quarantine is fixed so that a crash at any point leaves a state that
//! [`rollback`] understands (each step is journaled, and the journal fsynced, before it is done):
//!
//! 1. `begin rename`: the original is renamed to a unique sibling name (`.NAME.exhunt-q-…`), in
//!    one atomic step: from then on it is no longer served under its name, and nothing can swap
//!    the file being copied;
//! 2. `begin copy`: the renamed file is opened once; from that one handle it is hashed while it
//!    is copied into the vault (fsynced); the copy is read back and must hash to the same
//!    SHA-256, and that SHA-256 must be the plan's pinned one — otherwise the file is renamed
//!    back (never over another file) and left alone; the copy joins the vault's `manifest.json`;
//! 3. `begin remove` (or `begin stub`): the renamed sibling is removed (with `--stub`, an inert
//!    stub is first put at the original name, never over another file).
//!
//! Rollback renames the sibling back when it is still there, else restores the vault copy. It
//! refuses everything (changing nothing) only when a vault copy it needs does not hash to what
//! the journal recorded; a file found changed at its path (neither the original nor apply's stub)
//! is reported and left alone, and the rest is restored.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{ActionKind, Plan};
use crate::platform::{self, Owner};
use crate::{RemediateError, io_err};

/// The journal's file name inside the vault.
pub const JOURNAL_NAME: &str = "journal.jsonl";
/// The vault manifest's file name.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The folder of the vault that holds the copies.
pub const FILES_DIR: &str = "files";
/// The stub that replaces a file with `--stub`: inert in any web root (no server code).
pub const STUB: &[u8] = b"This file was quarantined by exhunt remediate. The original is in the vault named in the journal.\r\n";

/// How the evidence was preserved before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preservation {
    /// A package written by `exhunt collect`, verified before apply starts.
    Package(PathBuf),
    /// No package, for the reason given (recorded in the journal).
    NoPreserve(String),
    /// Nothing said: apply refuses.
    None,
}

/// Options of [`apply`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The vault folder (created; must not hold a journal already).
    pub vault: PathBuf,
    /// Where the scan target is now: file paths relative to the result's target are found here.
    pub target: Option<PathBuf>,
    /// How the evidence was preserved.
    pub preservation: Preservation,
    /// Replace each file with an inert stub instead of removing it.
    pub stub: bool,
    /// Act. Without it, apply only says what it would do.
    pub yes: bool,
    /// Quarantine files the plan has no SHA-256 for (whatever is at the path). Without it such
    /// files are left alone: plan again where the files can be read.
    pub allow_unpinned: bool,
    /// Testing: stop with [`RemediateError::Injected`] right after this many steps (journal
    /// writes and filesystem steps: renamed, copied, stub placed, removed), as a crash would.
    /// The binary sets it from `EXHUNT_REMEDIATE_FAIL_AFTER` in debug builds only.
    pub fail_after: Option<usize>,
    /// Unit tests: called with a label and the file's path at points where another process
    /// could change the file (`before-rename`, `renamed`, `copied`).
    #[cfg(test)]
    pub(crate) hook: Option<fn(&str, &Path)>,
}

/// What apply did (or would do).
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// One line per step, for people (paths are from evidence: escape before printing).
    pub lines: Vec<String>,
    /// Files quarantined (or that would be).
    pub quarantined: usize,
    /// Files left alone, with the reason.
    pub skipped: Vec<String>,
    /// The journal written (None in a dry run).
    pub journal: Option<PathBuf>,
    /// How the evidence was preserved, in words.
    pub preservation: String,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The first line.
    Start {
        /// The plan's id.
        plan_id: String,
        /// exhunt's version.
        exhunt: String,
        /// When.
        time: DateTime<Utc>,
        /// `package PATH (SHA-256 …, N files verified)` or `no-preserve: REASON`.
        preservation: String,
        /// Stubs instead of removal.
        stub: bool,
    },
    /// A step about to be done.
    Begin {
        /// Sequence number of the step.
        seq: u64,
        /// `copy`, `remove` or `stub`.
        step: String,
        /// Server and action of the plan.
        action: String,
        /// The file's path on this system.
        original: String,
        /// The copy, relative to the vault.
        vault_file: String,
        /// SHA-256 of the original.
        sha256: String,
        /// Its size.
        size: u64,
        /// Its times.
        modified: DateTime<Utc>,
        /// Access time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accessed: Option<DateTime<Utc>>,
        /// Creation time where the platform has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<DateTime<Utc>>,
        /// Owner and permissions.
        owner: Owner,
        /// The unique sibling name the original was renamed to before it was copied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renamed: Option<String>,
    },
    /// The step of that number is done.
    Done {
        /// Sequence number.
        seq: u64,
    },
    /// Apply put the file back under its name and left it alone (it was not what the plan
    /// pinned).
    Skipped {
        /// The file.
        original: String,
        /// Why.
        reason: String,
    },
    /// A rollback restored a file.
    Restored {
        /// The file.
        original: String,
        /// When.
        time: DateTime<Utc>,
    },
}

/// One file of the vault manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultEntry {
    /// Original path.
    pub original: String,
    /// The copy, relative to the vault.
    pub vault_file: String,
    /// SHA-256.
    pub sha256: String,
    /// Size.
    pub size: u64,
    /// Modification time.
    pub modified: DateTime<Utc>,
    /// Access time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessed: Option<DateTime<Utc>>,
    /// Creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Owner and permissions.
    pub owner: Owner,
    /// Plan action.
    pub action: String,
    /// When it was copied.
    pub quarantined: DateTime<Utc>,
}

/// The vault's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultManifest {
    /// `exhunt-vault/1`.
    pub schema: String,
    /// The plan.
    pub plan_id: String,
    /// Every file copied.
    pub files: Vec<VaultEntry>,
}

struct Journal {
    path: PathBuf,
    file: File,
    steps: usize,
    fail_after: Option<usize>,
}

impl Journal {
    fn write(&mut self, r: &Record) -> Result<(), RemediateError> {
        let mut line =
            serde_json::to_vec(r).map_err(|e| io_err(&self.path, io::Error::other(e)))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| io_err(&self.path, e))?;
        self.file.sync_all().map_err(|e| io_err(&self.path, e))?;
        self.tick()
    }
    /// A step done (a journal write or a filesystem change): where a test injects a crash.
    fn tick(&mut self) -> Result<(), RemediateError> {
        self.steps += 1;
        if self.fail_after == Some(self.steps) {
            return Err(RemediateError::Injected(self.steps));
        }
        Ok(())
    }
}

/// A name beside `path` that nothing uses yet: `.NAME.TAG-PID-N-NANOS`. Callers create it with
/// `create_new` or rename onto it, so an existing file is never truncated or replaced.
fn unique_sibling(path: &Path, tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let p = path.with_file_name(format!(
            ".{name}.{tag}-{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        if fs::symlink_metadata(&p).is_err() {
            return p;
        }
    }
}

/// Renames `from` to `to` without ever replacing a file at `to` (a hard link, then the old name
/// removed; where the file system has no hard links, a check then a rename).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", to.display()),
                ));
            }
            fs::rename(from, to)
        }
    }
}

/// `create_dir_all`, then every folder it created and the parent of the first made durable.
fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || fs::symlink_metadata(c).is_ok() {
            break;
        }
        missing.push(c.to_path_buf());
        cur = c.parent();
    }
    fs::create_dir_all(dir)?;
    for d in &missing {
        platform::sync_dir(d)?;
    }
    if let Some(top) = missing.last()
        && let Some(parent) = top.parent()
    {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        platform::sync_dir(parent)?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// SHA-256 and size of a file (for the planner's [`crate::FileFacts`]).
pub fn measure(path: &Path) -> io::Result<crate::FileFacts> {
    let (sha256, size) = sha256_file(path)?;
    Ok(crate::FileFacts { sha256, size })
}

/// Whether `p` is a plain relative path (no `..`, no root).
fn plain_relative(p: &str) -> bool {
    let p = Path::new(p);
    !p.as_os_str().is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && plain_components(p.to_string_lossy().as_ref())
}

/// Whether every component of `p`, split on both `/` and `\\`, is a name: no `.`, `..` or
/// empty component (a root — `/`, `C:\\`, `\\\\server\\share` — is allowed at the start only).
/// Windows resolves `..` textually, so `a\\..\\..\\b` must never reach the file system.
fn plain_components(p: &str) -> bool {
    let mut rest = p;
    if let Some(r) = rest
        .strip_prefix("\\\\")
        .or_else(|| rest.strip_prefix("//"))
    {
        // UNC `\\server\share\…`; the device forms `\\?\` and `\\.\` are refused below.
        rest = r;
    } else if rest.len() >= 3
        && rest.as_bytes()[0].is_ascii_alphabetic()
        && rest.as_bytes()[1] == b':'
        && matches!(rest.as_bytes()[2], b'\\' | b'/')
    {
        rest = &rest[3..];
    } else if let Some(r) = rest.strip_prefix(['/', '\\']) {
        rest = r;
    }
    !rest.is_empty()
        && rest
            .split(['/', '\\'])
            .all(|c| !c.is_empty() && c != "." && c != ".." && c != "?")
}

/// Refuses a path that is not plain: see [`plain_components`]; on Windows also a path that
/// [`std::path::absolute`] would change (it resolves `..` and trailing dots textually).
fn check_plain(p: &Path) -> Result<(), String> {
    if !plain_components(p.to_string_lossy().as_ref()) {
        return Err(format!(
            "{} has a `.`, `..` or empty component: refused (it could name another file than the one the scan saw)",
            p.display()
        ));
    }
    #[cfg(windows)]
    {
        // Windows drops trailing dots and spaces of a name and resolves `..` textually; `/` is
        // a separator too (a --target joined with a relative path mixes both).
        let s = p.to_string_lossy().replace('/', "\\");
        let n = Path::new(&s);
        if s.split('\\').any(|c| c.ends_with('.') || c.ends_with(' '))
            || (n.is_absolute() && std::path::absolute(n).ok().as_deref() != Some(n))
        {
            return Err(format!(
                "{} is not a path Windows keeps as written: refused",
                p.display()
            ));
        }
    }
    Ok(())
}

/// Where a planned file is on this system: under `target` by its path relative to the scan
/// target (or its drive-rooted server path), else the path as the result names it.
pub fn locate(
    path: &str,
    relative: Option<&str>,
    target: Option<&Path>,
) -> Result<PathBuf, String> {
    if !plain_components(path) {
        return Err(format!(
            "{path} has a `.`, `..` or empty component: refused (it could name another file than the one the scan saw)"
        ));
    }
    let p = match target {
        Some(t) => {
            if let Some(rel) = relative.filter(|r| plain_relative(r)) {
                return Ok(t.join(rel));
            }
            // A path of the server (`C:\inetpub\…`) under a target laid out like C:\.
            let bytes = path.as_bytes();
            if bytes.len() > 3
                && bytes[1] == b':'
                && (bytes[2] == b'\\' || bytes[2] == b'/')
                && let Some(rest) = path.get(3..)
            {
                let rest = rest.replace('\\', "/");
                if plain_relative(&rest) {
                    return Ok(t.join(rest));
                }
            }
            return Err(format!(
                "{path} is not under the scan target, so it cannot be found under --target"
            ));
        }
        None => PathBuf::from(path),
    };
    check_plain(&p)?;
    Ok(p)
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn check_preservation(p: &Preservation) -> Result<String, RemediateError> {
    match p {
        Preservation::None => Err(RemediateError::Refused(
            "the evidence was not preserved: make a package first (`exhunt collect -o PACKAGE.zip`) and pass `--evidence PACKAGE.zip`, or say why not with `--no-preserve REASON` (recorded in the journal); nothing was changed".to_string(),
        )),
        Preservation::NoPreserve(reason) if reason.trim().is_empty() => Err(RemediateError::Refused(
            "--no-preserve needs a reason; nothing was changed".to_string(),
        )),
        Preservation::NoPreserve(reason) => Ok(format!("no-preserve: {reason}")),
        Preservation::Package(pkg) => {
            let r = exhunt_collect::verify(pkg).map_err(|e| {
                RemediateError::Refused(format!(
                    "the evidence package {} cannot be verified ({e}); nothing was changed",
                    pkg.display()
                ))
            })?;
            if !r.ok() || r.files == 0 {
                return Err(RemediateError::Refused(format!(
                    "the evidence package {} does not verify ({} difference(s){}); nothing was changed",
                    pkg.display(),
                    r.mismatches.len(),
                    if r.files == 0 { ", no files" } else { "" }
                )));
            }
            Ok(format!(
                "package {} (SHA-256 {}, {} files verified{})",
                pkg.display(),
                r.package_sha256,
                r.files,
                match r.package_hash_ok {
                    Some(true) => ", matches its .sha256",
                    _ => ", no .sha256 beside it",
                }
            ))
        }
    }
}

/// SHA-256 of the files a package holds with content, of those it lists by metadata only, and
/// the server it was collected on (live collections only).
type PackageFacts = (HashSet<String>, HashSet<String>, Option<String>);

fn package_facts(pkg: &Path) -> Option<PackageFacts> {
    let mut archive = zip::ZipArchive::new(File::open(pkg).ok()?).ok()?;
    let origins = exhunt_sources::package::Origins::of(&mut archive)?.ok()?;
    let m = origins.manifest;
    let lower = |v: &[exhunt_sources::package::FileEntry]| {
        v.iter().map(|f| f.sha256.to_ascii_lowercase()).collect()
    };
    Some((lower(&m.files), lower(&m.metadata_only), m.host_name))
}

fn package_hashes(pkg: &Path) -> Option<(HashSet<String>, HashSet<String>)> {
    package_facts(pkg).map(|(c, m, _)| (c, m))
}

/// A package that verifies is not enough: it must be this server's evidence. Refused when it
/// names another server, or holds none of the files the plan pinned.
fn check_package_fits(plan: &Plan, pkg: &Path, pinned: &[&str]) -> Result<(), RemediateError> {
    let Some((content, metadata, host)) = package_facts(pkg) else {
        return Err(RemediateError::Refused(format!(
            "the evidence package {} has no readable manifest; nothing was changed",
            pkg.display()
        )));
    };
    let short = |n: &str| n.split('.').next().unwrap_or_default().to_ascii_lowercase();
    if let Some(h) = host.filter(|h| !h.trim().is_empty())
        && !plan.servers.iter().any(|s| short(&s.server) == short(&h))
    {
        return Err(RemediateError::Refused(format!(
            "the evidence package {} was collected on {h}, the plan is for {}: not this server's evidence; nothing was changed",
            pkg.display(),
            plan.servers
                .iter()
                .map(|s| s.server.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !pinned.is_empty()
        && !pinned.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            content.contains(&h) || metadata.contains(&h)
        })
    {
        return Err(RemediateError::Refused(format!(
            "the evidence package {} holds none of the {} file(s) to quarantine (by SHA-256): it is not this server's evidence, or not from before the cleanup; nothing was changed",
            pkg.display(),
            pinned.len()
        )));
    }
    Ok(())
}

/// Carries out the plan's quarantine actions (the only actions exhunt performs itself; the
/// configuration scripts are for an administrator to run).
pub fn apply(plan: &Plan, opts: &ApplyOptions) -> Result<ApplyReport, RemediateError> {
    let preservation = check_preservation(&opts.preservation)?;
    let mut report = ApplyReport {
        preservation: preservation.clone(),
        ..ApplyReport::default()
    };
    // The vault outside the target (given, or the scan targets the plan names).
    let targets: Vec<PathBuf> = match &opts.target {
        Some(t) => vec![t.clone()],
        None => plan
            .servers
            .iter()
            .flat_map(|s| s.targets.iter().map(PathBuf::from))
            .collect(),
    };
    for t in &targets {
        if let (Ok(t), Some(v)) = (t.canonicalize(), canonical_future(&opts.vault))
            && t.is_dir()
            && v.starts_with(&t)
        {
            return Err(RemediateError::Refused(format!(
                "the vault {} is inside the target {}: the files would still be on the server and found again; nothing was changed",
                opts.vault.display(),
                t.display()
            )));
        }
    }
    let journal_path = opts.vault.join(JOURNAL_NAME);
    if journal_path.exists() {
        return Err(RemediateError::Refused(format!(
            "{} already holds a journal: one vault per apply (roll back with that journal, or choose another --vault); nothing was changed",
            opts.vault.display()
        )));
    }
    // What to do, resolved before anything changes.
    let mut work = Vec::new();
    for sp in &plan.servers {
        for a in sp
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Quarantine)
        {
            let Some(f) = &a.file else { continue };
            match locate(&f.path, f.relative.as_deref(), opts.target.as_deref()) {
                // Absolute in the journal, so that rollback works from any folder.
                Ok(p) => work.push((
                    format!("{} {}", sp.server, a.id),
                    std::path::absolute(&p).unwrap_or(p),
                    f.sha256.clone(),
                    f.size,
                )),
                Err(why) => report
                    .skipped
                    .push(format!("{} {}: {why}", sp.server, a.id)),
            }
        }
    }
    // Whatever the targets resolve to: never in a folder IIS may serve, nor beside a file to
    // quarantine (a vault there would serve the web shells it holds).
    if let Some(v) = canonical_future(&opts.vault).or_else(|| std::path::absolute(&opts.vault).ok())
    {
        let served = v.components().any(|c| {
            let c = c.as_os_str().to_string_lossy().to_ascii_lowercase();
            matches!(
                c.as_str(),
                "inetpub" | "wwwroot" | "httpproxy" | "clientaccess" | "aspnet_client"
            )
        });
        let beside = work.iter().find(|w| {
            w.1.parent()
                .and_then(canonical_future)
                .is_some_and(|p| v.starts_with(&p))
        });
        if served || beside.is_some() {
            return Err(RemediateError::Refused(format!(
                "the vault {} is {}: the files would still be served; choose a folder outside the web roots and the server's files; nothing was changed",
                opts.vault.display(),
                match beside {
                    Some(w) => format!("inside the folder of {}", w.1.display()),
                    None => "inside a web folder (inetpub, wwwroot, HttpProxy, ClientAccess, aspnet_client)".to_string(),
                }
            )));
        }
    }
    if let Preservation::Package(pkg) = &opts.preservation {
        let pinned: Vec<&str> = work.iter().filter_map(|w| w.2.as_deref()).collect();
        check_package_fits(plan, pkg, &pinned)?;
    }
    if !opts.yes {
        for (action, p, _, _) in &work {
            report.lines.push(format!(
                "would quarantine {} ({action}): copy into {}, verify, then {}",
                p.display(),
                opts.vault.display(),
                if opts.stub {
                    "replace it with an inert stub"
                } else {
                    "remove it"
                }
            ));
        }
        report.quarantined = work.len();
        return Ok(report);
    }

    create_dir_all_durable(&opts.vault.join(FILES_DIR)).map_err(|e| io_err(&opts.vault, e))?;
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| io_err(&journal_path, e))?;
    platform::sync_dir(&opts.vault).map_err(|e| io_err(&opts.vault, e))?;
    let mut j = Journal {
        path: journal_path.clone(),
        file,
        steps: 0,
        fail_after: opts.fail_after,
    };
    report.journal = Some(journal_path);
    j.write(&Record::Start {
        plan_id: plan.id.clone(),
        exhunt: env!("CARGO_PKG_VERSION").to_string(),
        time: now(),
        preservation,
        stub: opts.stub,
    })?;
    let mut manifest = VaultManifest {
        schema: "exhunt-vault/1".to_string(),
        plan_id: plan.id.clone(),
        files: Vec::new(),
    };
    let in_package = match &opts.preservation {
        Preservation::Package(p) => package_hashes(p),
        _ => None,
    };
    let mut seq = 0u64;
    for (n, (action, path, want_sha, want_size)) in work.into_iter().enumerate() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => m,
            Ok(_) => {
                report.skipped.push(format!(
                    "{action}: {} is not a regular file; left alone",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                report
                    .skipped
                    .push(format!("{action}: {}: {e}; left alone", path.display()));
                continue;
            }
        };
        if want_sha.is_none() && !opts.allow_unpinned {
            report.skipped.push(format!(
                "{action}: {}: the plan has no SHA-256 for it (the planner could not read it), so apply cannot know it is the file the scan saw; left alone: plan again where the file can be read, or pass --allow-unpinned",
                path.display()
            ));
            continue;
        }
        if want_size.is_some_and(|w| w != meta.len()) {
            report.skipped.push(format!(
                "{action}: {} changed since the plan ({} bytes, the plan says {}); left alone: plan again",
                path.display(),
                meta.len(),
                want_size.unwrap_or_default()
            ));
            continue;
        }
        // A first look by path, so that a file that plainly differs is not even renamed; the
        // hash that counts is taken below from the one handle the copy is made from.
        if let Some(w) = &want_sha
            && let Ok((h, _)) = sha256_file(&path)
            && !h.eq_ignore_ascii_case(w)
        {
            report.skipped.push(format!(
                "{action}: {} changed since the plan (SHA-256 {h}, the plan says {w}); left alone: plan again",
                path.display()
            ));
            continue;
        }
        let parent = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let renamed = unique_sibling(&path, "exhunt-q");
        let vault_file = format!(
            "{FILES_DIR}/{:04}-{}",
            n + 1,
            want_sha.as_deref().unwrap_or("unpinned")
        );
        let modified = meta.modified().map_err(|e| io_err(&path, e))?;
        let begin =
            |seq: u64, step: &str, sha: &str, size: u64, meta: &fs::Metadata| Record::Begin {
                seq,
                step: step.to_string(),
                action: action.clone(),
                original: path.display().to_string(),
                vault_file: vault_file.clone(),
                sha256: sha.to_string(),
                size,
                modified: DateTime::<Utc>::from(meta.modified().unwrap_or(modified)),
                accessed: meta.accessed().ok().map(DateTime::<Utc>::from),
                created: meta.created().ok().map(DateTime::<Utc>::from),
                owner: platform::owner(meta),
                renamed: Some(renamed.display().to_string()),
            };
        let pinned = want_sha.clone().unwrap_or_default().to_ascii_lowercase();
        // 1: rename out of the way, in one atomic step.
        seq += 1;
        j.write(&begin(seq, "rename", &pinned, meta.len(), &meta))?;
        #[cfg(test)]
        if let Some(h) = opts.hook {
            h("before-rename", &path);
        }
        platform::prepare_rename(&path).map_err(|e| io_err(&path, e))?;
        fs::rename(&path, &renamed).map_err(|e| io_err(&path, e))?;
        platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        j.tick()?;
        #[cfg(test)]
        if let Some(h) = opts.hook {
            h("renamed", &path);
        }
        j.write(&Record::Done { seq })?;
        // 2: hash and copy from one handle of the renamed file.
        let mut src = File::open(&renamed).map_err(|e| io_err(&renamed, e))?;
        let hmeta = src.metadata().map_err(|e| io_err(&renamed, e))?;
        seq += 1;
        j.write(&begin(seq, "copy", &pinned, hmeta.len(), &hmeta))?;
        let dst = opts.vault.join(&vault_file);
        let (sha, size) = copy_hashing(&mut src, &dst)?;
        drop(src);
        j.tick()?;
        #[cfg(test)]
        if let Some(h) = opts.hook {
            h("copied", &path);
        }
        if want_sha
            .as_deref()
            .is_some_and(|w| !w.eq_ignore_ascii_case(&sha))
            || want_size.is_some_and(|w| w != size)
        {
            // Not the file the plan pinned: put it back under its name, never over another file.
            let back = rename_no_replace(&renamed, &path);
            platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
            let _ = fs::remove_file(&dst);
            let reason = format!(
                "changed since the plan (SHA-256 {sha}, the plan says {})",
                want_sha.as_deref().unwrap_or("?")
            );
            match back {
                Ok(()) => {
                    j.write(&Record::Skipped {
                        original: path.display().to_string(),
                        reason: reason.clone(),
                    })?;
                    report.skipped.push(format!(
                        "{action}: {} {reason}; left alone: plan again",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    return Err(RemediateError::Refused(format!(
                        "{} {reason}, and it could not be put back from {} ({e}); stopping: roll back with the journal",
                        path.display(),
                        renamed.display()
                    )));
                }
            }
        }
        let (got, got_size) = sha256_file(&dst).map_err(|e| io_err(&dst, e))?;
        if got != sha || got_size != size {
            return Err(RemediateError::Refused(format!(
                "the vault copy {} hashes to {got}, not {sha}: the original {} was NOT removed (it is at {}); stopping: roll back with the journal",
                dst.display(),
                path.display(),
                renamed.display()
            )));
        }
        if let Some((content, metadata)) = &in_package
            && !content.contains(&sha)
        {
            report.lines.push(format!(
                "note: {} is {} the evidence package: the vault copy is its only copy",
                path.display(),
                if metadata.contains(&sha) {
                    "listed by metadata only in"
                } else {
                    "not in"
                }
            ));
        }
        manifest.files.push(VaultEntry {
            original: path.display().to_string(),
            vault_file: vault_file.clone(),
            sha256: sha.clone(),
            size,
            modified: DateTime::<Utc>::from(hmeta.modified().unwrap_or(modified)),
            accessed: hmeta.accessed().ok().map(DateTime::<Utc>::from),
            created: hmeta.created().ok().map(DateTime::<Utc>::from),
            owner: platform::owner(&hmeta),
            action: action.clone(),
            quarantined: now(),
        });
        write_manifest(&opts.vault, &manifest)?;
        j.write(&Record::Done { seq })?;
        // 3: stub (never over another file), then remove the renamed original.
        seq += 1;
        j.write(&begin(
            seq,
            if opts.stub { "stub" } else { "remove" },
            &sha,
            size,
            &hmeta,
        ))?;
        let mut stub_note = "";
        if opts.stub {
            let tmp = stub_tmp(&renamed);
            {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| io_err(&tmp, e))?;
                f.write_all(STUB).map_err(|e| io_err(&tmp, e))?;
                f.sync_all().map_err(|e| io_err(&tmp, e))?;
            }
            match rename_no_replace(&tmp, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
                    stub_note =
                        " (no stub: a file appeared at its name meanwhile and was left alone)";
                }
                Err(e) => return Err(io_err(&path, e)),
            }
            platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
            j.tick()?;
        }
        fs::remove_file(&renamed).map_err(|e| io_err(&renamed, e))?;
        platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        j.tick()?;
        j.write(&Record::Done { seq })?;
        report.quarantined += 1;
        report.lines.push(format!(
            "quarantined {} ({action}): SHA-256 {sha}{}, {size} bytes, copy verified in {}; {}{stub_note}",
            path.display(),
            if want_sha.is_some() {
                " as planned"
            } else {
                " (the plan had no SHA-256: taken as found, --allow-unpinned)"
            },
            dst.display(),
            if opts.stub {
                "replaced by an inert stub"
            } else {
                "removed"
            }
        ));
    }
    Ok(report)
}

/// The canonical path a folder will have once created (its nearest existing ancestor
/// canonicalised).
fn canonical_future(p: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            let mut c = c;
            for r in rest.iter().rev() {
                c.push(r);
            }
            return Some(c);
        }
        rest.push(cur.file_name()?.to_os_string());
        cur = match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
    }
}

/// Where apply writes the stub for a renamed file before putting it at the original name.
fn stub_tmp(renamed: &Path) -> PathBuf {
    let mut s = renamed.as_os_str().to_os_string();
    s.push(".stub");
    PathBuf::from(s)
}

/// Copies from one open handle into `dst` (created new, fsynced, its folder too), hashing
/// what is read: the SHA-256 and size of exactly the bytes copied.
fn copy_hashing(from: &mut File, dst: &Path) -> Result<(String, u64), RemediateError> {
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| io_err(dst, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(dst, e)),
        };
        let chunk = buf.get(..k).unwrap_or_default();
        h.update(chunk);
        to.write_all(chunk).map_err(|e| io_err(dst, e))?;
        n += k as u64;
    }
    to.sync_all().map_err(|e| io_err(dst, e))?;
    if let Some(d) = dst.parent() {
        platform::sync_dir(d).map_err(|e| io_err(d, e))?;
    }
    Ok((hex::encode(h.finalize()), n))
}

fn write_manifest(vault: &Path, m: &VaultManifest) -> Result<(), RemediateError> {
    let path = vault.join(MANIFEST_NAME);
    let tmp = unique_sibling(&path, "tmp");
    let text = serde_json::to_vec_pretty(m).map_err(|e| io_err(&path, io::Error::other(e)))?;
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        f.write_all(&text).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    // The manifest is the vault's own file: replacing it is the point.
    fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    platform::sync_dir(vault).map_err(|e| io_err(vault, e))
}

/// What rollback did (or would do).
#[derive(Debug, Default)]
pub struct RollbackReport {
    /// Files restored (or that would be).
    pub restored: Vec<String>,
    /// Files found in place, untouched by apply.
    pub in_place: Vec<String>,
    /// Files left alone: something else is at their path now (never overwritten), or they
    /// are gone with no copy apply made. Rollback of them is partial.
    pub skipped: Vec<String>,
    /// Notes (an owner that could not be restored…).
    pub notes: Vec<String>,
}

#[derive(Default)]
struct FileState {
    /// The first `begin` (its metadata is the original's).
    first: Option<Record>,
    /// The last `begin` (its SHA-256 is the one verified last).
    last: Option<Record>,
    renamed: Option<PathBuf>,
    remove_begun: bool,
    skipped: bool,
}

/// Reads a journal; a last line cut by a crash is ignored, any other unreadable line refused.
pub fn read_journal(path: &Path) -> Result<Vec<Record>, RemediateError> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    let last = lines.len().saturating_sub(1);
    // Apply's last line cut by a crash stays where it was; rollback then appends `restored`
    // lines after it (on a line of their own).
    let only_restored_after = |i: usize| {
        lines.iter().skip(i + 1).all(|l| {
            l.trim().is_empty()
                || matches!(
                    serde_json::from_str::<Record>(l),
                    Ok(Record::Restored { .. })
                )
        })
    };
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i == last || only_restored_after(i) => {}
            Err(e) => {
                return Err(RemediateError::BadInput {
                    path: path.display().to_string(),
                    what: "journal",
                    reason: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    if !matches!(out.first(), Some(Record::Start { .. })) {
        return Err(RemediateError::BadInput {
            path: path.display().to_string(),
            what: "journal",
            reason: "it does not start with an exhunt remediate start record".to_string(),
        });
    }
    Ok(out)
}

/// Where a restored file comes from.
enum Source {
    /// Apply's renamed sibling, still there: renamed back.
    Renamed(PathBuf),
    /// The vault copy (hash checked).
    Vault(PathBuf),
}

/// Whether the file at `p` is apply's stub (or a stub cut short by a crash while written).
fn is_stub(p: &Path) -> bool {
    fs::read(p).is_ok_and(|b| STUB.starts_with(&b))
}

/// Restores every file apply removed or stubbed, from the journal and its vault (the journal's
/// folder). Without `yes`, says what it would restore. Refuses, changing nothing, when a vault
/// copy it needs does not hash to the journal's SHA-256. A file found changed at its path is
/// never overwritten: it is listed in [`RollbackReport::skipped`] and the rest is restored.
pub fn rollback(journal: &Path, yes: bool) -> Result<RollbackReport, RemediateError> {
    let records = read_journal(journal)?;
    let vault = journal
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut files: BTreeMap<String, FileState> = BTreeMap::new();
    for r in &records {
        match r {
            Record::Begin {
                step,
                original,
                renamed,
                ..
            } => {
                let e = files.entry(original.clone()).or_default();
                if e.first.is_none() {
                    e.first = Some(r.clone());
                }
                e.last = Some(r.clone());
                if let Some(rn) = renamed {
                    e.renamed = Some(PathBuf::from(rn));
                }
                if step == "remove" || step == "stub" {
                    e.remove_begun = true;
                }
            }
            Record::Skipped { original, .. } => {
                files.entry(original.clone()).or_default().skipped = true;
            }
            _ => {}
        }
    }
    let mut report = RollbackReport::default();
    let mut todo = Vec::new();
    let mut bad = Vec::new();
    for (original, st) in &files {
        let (
            Some(first),
            Some(Record::Begin {
                vault_file, sha256, ..
            }),
        ) = (&st.first, &st.last)
        else {
            continue;
        };
        if st.skipped {
            // Apply put it back itself.
            report.in_place.push(original.clone());
            continue;
        }
        let path = PathBuf::from(original);
        if let Err(why) = check_plain(&path) {
            report.skipped.push(format!("{original}: {why}"));
            continue;
        }
        // Only names apply itself gives: a sibling `.NAME.exhunt-q-…` of the original, and a
        // vault file inside the vault (a journal edited to name other files is not followed).
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = |r: &PathBuf| {
            r.parent() == path.parent()
                && r.file_name().is_some_and(|n| {
                    n.to_string_lossy()
                        .starts_with(&format!(".{name}.exhunt-q-"))
                })
        };
        if st.renamed.as_ref().is_some_and(|r| !ours(r)) || !plain_relative(vault_file) {
            report.skipped.push(format!(
                "{original}: the journal names a file apply does not make (edited?); not restored"
            ));
            continue;
        }
        let renamed = st
            .renamed
            .clone()
            .filter(|r| fs::symlink_metadata(r).is_ok_and(|m| m.is_file()));
        let now = sha256_file(&path).ok().map(|(h, _)| h);
        let stub_here = now.is_some() && is_stub(&path);
        if let Some(h) = &now {
            if renamed.is_none() && !st.remove_begun {
                // Never renamed (or apply put it back): as apply found it.
                report.in_place.push(original.clone());
                continue;
            }
            if !sha256.is_empty() && h.eq_ignore_ascii_case(sha256) {
                report.in_place.push(original.clone());
                if let Some(r) = &renamed
                    && sha256_file(r).ok().map(|(x, _)| x).as_deref() == Some(h.as_str())
                {
                    // A second name of the same file left by a crash during a rename.
                    todo.push((path, Source::Renamed(r.clone()), first.clone(), true));
                }
                continue;
            }
            if !stub_here {
                report.skipped.push(format!(
                    "{original}: changed since apply (neither the quarantined file nor apply's stub); not overwritten{}",
                    renamed
                        .as_ref()
                        .map(|r| format!("; the original is still at {}", r.display()))
                        .unwrap_or_default()
                ));
                continue;
            }
        }
        if let Some(r) = renamed {
            todo.push((path, Source::Renamed(r), first.clone(), false));
            continue;
        }
        if !st.remove_begun {
            report.skipped.push(format!(
                "{original}: missing, and apply never removed it (no copy of it was made): not restored"
            ));
            continue;
        }
        let src = vault.join(vault_file);
        match sha256_file(&src) {
            Ok((h, _)) if h.eq_ignore_ascii_case(sha256) => {
                // The times and owner as apply first found them (before it read or renamed
                // the file), the SHA-256 verified last.
                let mut rec = first.clone();
                if let Record::Begin { sha256: s, .. } = &mut rec {
                    s.clone_from(sha256);
                }
                todo.push((path, Source::Vault(src), rec, false));
            }
            Ok((h, _)) => bad.push(format!(
                "{}: SHA-256 {h}, the journal says {sha256}",
                src.display()
            )),
            Err(e) => bad.push(format!("{}: {e}", src.display())),
        }
    }
    if !bad.is_empty() {
        return Err(RemediateError::Refused(format!(
            "the vault does not match the journal, nothing was restored:\n  {}",
            bad.join("\n  ")
        )));
    }
    if !yes {
        report.restored = todo
            .iter()
            .filter(|t| !t.3)
            .map(|(p, _, _, _)| p.display().to_string())
            .collect();
        return Ok(report);
    }
    // A stub written but not yet put in place when apply stopped: apply's own, removed.
    for st in files.values() {
        if let Some(r) = &st.renamed {
            let tmp = stub_tmp(r);
            if fs::symlink_metadata(&tmp).is_ok() && is_stub(&tmp) {
                fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
                report.notes.push(format!(
                    "{}: removed apply's unfinished stub",
                    tmp.display()
                ));
            }
        }
    }
    let mut jf = OpenOptions::new()
        .read(true)
        .append(true)
        .open(journal)
        .map_err(|e| io_err(journal, e))?;
    // A line torn by a crash must not swallow the next record.
    let torn = fs::read(journal)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    if torn {
        jf.write_all(b"\n").map_err(|e| io_err(journal, e))?;
    }
    for (path, src, begin, leftover) in todo {
        let Record::Begin {
            sha256,
            modified,
            accessed,
            created,
            owner,
            ..
        } = begin
        else {
            continue;
        };
        let parent = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if leftover {
            if let Source::Renamed(r) = &src {
                fs::remove_file(r).map_err(|e| io_err(r, e))?;
                platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
                report.notes.push(format!(
                    "{}: removed a second name of the file left by an interrupted rename",
                    r.display()
                ));
            }
            continue;
        }
        create_dir_all_durable(&parent).map_err(|e| io_err(&parent, e))?;
        let from = match &src {
            Source::Renamed(r) => r.clone(),
            Source::Vault(v) => {
                let tmp = unique_sibling(&path, "exhunt-restore");
                let mut vf = File::open(v).map_err(|e| io_err(v, e))?;
                let (h, _) = copy_hashing(&mut vf, &tmp)?;
                if !h.eq_ignore_ascii_case(&sha256) {
                    let _ = fs::remove_file(&tmp);
                    return Err(RemediateError::Refused(format!(
                        "{} changed while it was restored (SHA-256 {h}, not {sha256}); {} not restored",
                        v.display(),
                        path.display()
                    )));
                }
                {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&tmp)
                        .map_err(|e| io_err(&tmp, e))?;
                    platform::set_times(
                        &f,
                        SystemTime::from(modified),
                        accessed.map(SystemTime::from),
                        created.map(SystemTime::from),
                    )
                    .map_err(|e| io_err(&tmp, e))?;
                    f.sync_all().map_err(|e| io_err(&tmp, e))?;
                }
                if let Some(note) =
                    platform::restore_owner(&tmp, &owner).map_err(|e| io_err(&tmp, e))?
                {
                    report.notes.push(format!("{}: {note}", path.display()));
                }
                tmp
            }
        };
        // Apply's stub goes (checked again just before); anything else there is never replaced.
        if fs::symlink_metadata(&path).is_ok() {
            if is_stub(&path) {
                platform::prepare_rename(&path).map_err(|e| io_err(&path, e))?;
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            } else {
                if matches!(src, Source::Vault(_)) {
                    let _ = fs::remove_file(&from);
                }
                report.skipped.push(format!(
                    "{}: a file appeared at its path during rollback; not overwritten",
                    path.display()
                ));
                continue;
            }
        }
        match rename_no_replace(&from, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if matches!(src, Source::Vault(_)) {
                    let _ = fs::remove_file(&from);
                }
                report.skipped.push(format!(
                    "{}: a file appeared at its path during rollback; not overwritten",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(io_err(&path, e)),
        }
        platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        if matches!(src, Source::Renamed(_)) {
            // The read-only attribute apply cleared on Windows before the rename (a no-op
            // elsewhere: owner and mode are unchanged by a rename).
            if let Some(note) =
                platform::restore_owner(&path, &owner).map_err(|e| io_err(&path, e))?
            {
                report.notes.push(format!("{}: {note}", path.display()));
            }
        }
        if matches!(src, Source::Vault(_)) {
            let (h, _) = sha256_file(&path).map_err(|e| io_err(&path, e))?;
            if !h.eq_ignore_ascii_case(&sha256) {
                return Err(RemediateError::Refused(format!(
                    "{} restored but hashes to {h}, not {sha256}",
                    path.display()
                )));
            }
        }
        let mut line = serde_json::to_vec(&Record::Restored {
            original: path.display().to_string(),
            time: now(),
        })
        .map_err(|e| io_err(journal, io::Error::other(e)))?;
        line.push(b'\n');
        jf.write_all(&line).map_err(|e| io_err(journal, e))?;
        jf.sync_all().map_err(|e| io_err(journal, e))?;
        report.restored.push(path.display().to_string());
    }
    Ok(report)
}
