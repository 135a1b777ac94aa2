//! Apply and rollback: the only code in the project that changes a system.
//!
//! The order of every quarantine is fixed so that a crash at any point leaves a state that
//! [`rollback`] understands:
//!
//! 1. journal `begin copy` (with the file's SHA-256, size, times and owner), fsynced;
//! 2. copy into the vault, fsync, read the copy back and compare its SHA-256; add it to the
//!    vault's `manifest.json` (written beside, fsynced, renamed over);
//! 3. journal `done`;
//! 4. journal `begin remove` (or `begin stub`), fsynced;
//! 5. remove the original (or replace it, by rename, with an inert stub), fsync its folder;
//! 6. journal `done`.
//!
//! Rollback restores a file whenever its removal was begun and the original is not there with
//! its recorded hash; it first checks every vault copy it needs, and refuses (changing nothing)
//! when one does not hash to what the journal recorded.

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
    /// Testing: stop with [`RemediateError::Injected`] right after this many journal writes,
    /// as a crash would. The binary sets it from `EXHUNT_REMEDIATE_FAIL_AFTER`.
    pub fail_after: Option<usize>,
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
    },
    /// The step of that number is done.
    Done {
        /// Sequence number.
        seq: u64,
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
    writes: usize,
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
        self.writes += 1;
        if self.fail_after == Some(self.writes) {
            return Err(RemediateError::Injected(self.writes));
        }
        Ok(())
    }
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
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Where a planned file is on this system: under `target` by its path relative to the scan
/// target (or its drive-rooted server path), else the path as the result names it.
pub fn locate(
    path: &str,
    relative: Option<&str>,
    target: Option<&Path>,
) -> Result<PathBuf, String> {
    match target {
        Some(t) => {
            if let Some(rel) = relative.filter(|r| plain_relative(r)) {
                return Ok(t.join(rel));
            }
            // A path of the server (`C:\inetpub\…`) under a target laid out like C:\.
            let bytes = path.as_bytes();
            if bytes.len() > 3 && bytes[1] == b':' && (bytes[2] == b'\\' || bytes[2] == b'/') {
                let rest = path[3..].replace('\\', "/");
                if plain_relative(&rest) {
                    return Ok(t.join(rest));
                }
            }
            Err(format!(
                "{path} is not under the scan target, so it cannot be found under --target"
            ))
        }
        None => Ok(PathBuf::from(path)),
    }
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

/// SHA-256 of the files a package holds with content, and of those it lists by metadata only.
fn package_hashes(pkg: &Path) -> Option<(HashSet<String>, HashSet<String>)> {
    let mut archive = zip::ZipArchive::new(File::open(pkg).ok()?).ok()?;
    let origins = exhunt_sources::package::Origins::of(&mut archive)?.ok()?;
    let m = origins.manifest;
    let lower = |v: &[exhunt_sources::package::FileEntry]| {
        v.iter().map(|f| f.sha256.to_ascii_lowercase()).collect()
    };
    Some((lower(&m.files), lower(&m.metadata_only)))
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

    fs::create_dir_all(opts.vault.join(FILES_DIR)).map_err(|e| io_err(&opts.vault, e))?;
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| io_err(&journal_path, e))?;
    platform::sync_dir(&opts.vault).map_err(|e| io_err(&opts.vault, e))?;
    let mut j = Journal {
        path: journal_path.clone(),
        file,
        writes: 0,
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
        let modified = meta.modified().map_err(|e| io_err(&path, e))?;
        let accessed = meta.accessed().ok();
        let created = meta.created().ok();
        let (sha, size) = sha256_file(&path).map_err(|e| io_err(&path, e))?;
        if want_sha
            .as_deref()
            .is_some_and(|w| !w.eq_ignore_ascii_case(&sha))
            || want_size.is_some_and(|w| w != size)
        {
            report.skipped.push(format!(
                "{action}: {} changed since the plan (SHA-256 {sha}, the plan says {}); left alone: plan again",
                path.display(),
                want_sha.as_deref().unwrap_or("?")
            ));
            continue;
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
        let vault_file = format!("{FILES_DIR}/{:04}-{sha}", n + 1);
        let begin = |seq: u64, step: &str| Record::Begin {
            seq,
            step: step.to_string(),
            action: action.clone(),
            original: path.display().to_string(),
            vault_file: vault_file.clone(),
            sha256: sha.clone(),
            size,
            modified: DateTime::<Utc>::from(modified),
            accessed: accessed.map(DateTime::<Utc>::from),
            created: created.map(DateTime::<Utc>::from),
            owner: platform::owner(&meta),
        };
        // 1–3: copy, verify, manifest.
        seq += 1;
        j.write(&begin(seq, "copy"))?;
        let dst = opts.vault.join(&vault_file);
        copy_durable(&path, &dst)?;
        let (got, got_size) = sha256_file(&dst).map_err(|e| io_err(&dst, e))?;
        if got != sha || got_size != size {
            return Err(RemediateError::Refused(format!(
                "the vault copy {} hashes to {got}, not {sha}: the original {} was NOT removed; stopping",
                dst.display(),
                path.display()
            )));
        }
        manifest.files.push(VaultEntry {
            original: path.display().to_string(),
            vault_file: vault_file.clone(),
            sha256: sha.clone(),
            size,
            modified: DateTime::<Utc>::from(modified),
            accessed: accessed.map(DateTime::<Utc>::from),
            created: created.map(DateTime::<Utc>::from),
            owner: platform::owner(&meta),
            action: action.clone(),
            quarantined: now(),
        });
        write_manifest(&opts.vault, &manifest)?;
        j.write(&Record::Done { seq })?;
        // 4–6: remove (or stub).
        seq += 1;
        j.write(&begin(seq, if opts.stub { "stub" } else { "remove" }))?;
        let now_meta = fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        if now_meta.len() != size || now_meta.modified().ok() != Some(modified) {
            return Err(RemediateError::Refused(format!(
                "{} changed while it was being copied; it was NOT removed; stopping (the journal says so)",
                path.display()
            )));
        }
        let parent = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if opts.stub {
            let tmp = sibling(&path, "exhunt-stub");
            {
                let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
                f.write_all(STUB).map_err(|e| io_err(&tmp, e))?;
                f.sync_all().map_err(|e| io_err(&tmp, e))?;
            }
            fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        } else {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
        platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        j.write(&Record::Done { seq })?;
        report.quarantined += 1;
        report.lines.push(format!(
            "quarantined {} ({action}): SHA-256 {sha}{}, {size} bytes, copy verified in {}; {}",
            path.display(),
            if want_sha.is_some() {
                " as planned"
            } else {
                " (the plan had no SHA-256: taken as found)"
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

fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}"))
}

fn copy_durable(src: &Path, dst: &Path) -> Result<(), RemediateError> {
    let mut from = File::open(src).map_err(|e| io_err(src, e))?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| io_err(dst, e))?;
    io::copy(&mut from, &mut to).map_err(|e| io_err(dst, e))?;
    to.sync_all().map_err(|e| io_err(dst, e))?;
    if let Some(d) = dst.parent() {
        platform::sync_dir(d).map_err(|e| io_err(d, e))?;
    }
    Ok(())
}

fn write_manifest(vault: &Path, m: &VaultManifest) -> Result<(), RemediateError> {
    let path = vault.join(MANIFEST_NAME);
    let tmp = vault.join(format!("{MANIFEST_NAME}.tmp"));
    let text = serde_json::to_vec_pretty(m).map_err(|e| io_err(&path, io::Error::other(e)))?;
    {
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(&text).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
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
    /// Notes (an owner that could not be restored…).
    pub notes: Vec<String>,
}

struct FileState {
    begin: Record,
    remove_begun: bool,
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
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i == last => {}
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

/// Restores every file apply removed or stubbed, from the journal and its vault (the journal's
/// folder). Without `yes`, says what it would restore. Refuses, changing nothing, when a vault
/// copy it needs does not hash to the journal's SHA-256.
pub fn rollback(journal: &Path, yes: bool) -> Result<RollbackReport, RemediateError> {
    let records = read_journal(journal)?;
    let vault = journal
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut files: BTreeMap<String, FileState> = BTreeMap::new();
    for r in &records {
        if let Record::Begin { step, original, .. } = r {
            let e = files.entry(original.clone()).or_insert_with(|| FileState {
                begin: r.clone(),
                remove_begun: false,
            });
            if step != "copy" {
                e.remove_begun = true;
            }
        }
    }
    let mut report = RollbackReport::default();
    let mut todo = Vec::new();
    let mut bad = Vec::new();
    for (original, st) in &files {
        let Record::Begin {
            vault_file, sha256, ..
        } = &st.begin
        else {
            continue;
        };
        let path = PathBuf::from(original);
        let now = sha256_file(&path).ok().map(|(h, _)| h);
        if now.as_deref() == Some(sha256.as_str()) {
            report.in_place.push(original.clone());
            continue;
        }
        // Only a removed file or apply's own stub is replaced: a file written there since
        // (a rebuilt page, another copy) is not overwritten.
        if now.is_some() && fs::read(&path).ok().as_deref() != Some(STUB) {
            bad.push(format!("{original}: changed since apply (neither the quarantined file nor apply's stub); not overwritten"));
            continue;
        }
        if !st.remove_begun {
            // The copy began but the original was never touched: it should be intact.
            bad.push(format!("{original}: not as recorded, but apply never removed it (changed by something else); not restored"));
            continue;
        }
        let src = vault.join(vault_file);
        match sha256_file(&src) {
            Ok((h, _)) if h == *sha256 => todo.push((path, src, st.begin.clone())),
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
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        return Ok(report);
    }
    // A stub written but not yet renamed into place when apply stopped: apply's own, removed.
    for original in files.keys() {
        let tmp = sibling(Path::new(original), "exhunt-stub");
        if fs::read(&tmp).ok().as_deref() == Some(STUB) {
            fs::remove_file(&tmp).map_err(|e| io_err(&tmp, e))?;
            report.notes.push(format!(
                "{}: removed apply's unfinished stub",
                tmp.display()
            ));
        }
    }
    let mut jf = OpenOptions::new()
        .append(true)
        .open(journal)
        .map_err(|e| io_err(journal, e))?;
    for (path, src, begin) in todo {
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
        fs::create_dir_all(&parent).map_err(|e| io_err(&parent, e))?;
        let tmp = sibling(&path, "exhunt-restore");
        let _ = fs::remove_file(&tmp);
        copy_durable(&src, &tmp)?;
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
        if let Some(note) = platform::restore_owner(&tmp, &owner).map_err(|e| io_err(&tmp, e))? {
            report.notes.push(format!("{}: {note}", path.display()));
        }
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        platform::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        let (h, _) = sha256_file(&path).map_err(|e| io_err(&path, e))?;
        if h != sha256 {
            return Err(RemediateError::Refused(format!(
                "{} restored but hashes to {h}, not {sha256}",
                path.display()
            )));
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
