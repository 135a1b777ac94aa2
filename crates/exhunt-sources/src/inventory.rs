//! Inventory: every file of a target, from a folder walk or a zip's central directory.
//!
//! Folders are walked with nothing hidden (hidden and system files included, no ignore files) and
//! without following symbolic links, so a scan never leaves its target and never loops. Zip
//! archives (given as the target, or found inside a folder) are listed from their central
//! directory and their members are read in place; a zip inside a zip is not opened (depth limit 1)
//! and says so in the ledger.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use exhunt_model::{Cause, Problem};

use crate::limits::Limits;

/// One file to classify and maybe read.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path as shown in evidence: the file path, or `archive.zip!member/name`.
    pub display: String,
    /// Path components relative to the target root, lower-cased, separators normalised; used to
    /// recognise artefact kinds by path whatever the host OS.
    pub components: Vec<String>,
    /// Size in bytes: the uncompressed size declared by a zip member; 0 for a plain file until
    /// [`Item::metadata`] reads it.
    pub size: u64,
    /// Last modification time, seconds since the Unix epoch (file system, or zip member header
    /// read as UTC), when known.
    pub modified: Option<i64>,
    /// Where the bytes come from.
    pub source: ItemSource,
}

impl Item {
    /// Size and modification time (seconds since the epoch): from the file system for a plain
    /// file (one `stat`), from the member header for a zip member.
    pub fn metadata(&self) -> (u64, Option<i64>) {
        match &self.source {
            ItemSource::File(p) => match std::fs::metadata(p) {
                Ok(m) => (m.len(), unix_secs(m.modified().ok())),
                Err(_) => (self.size, self.modified),
            },
            ItemSource::ZipMember { .. } => (self.size, self.modified),
        }
    }
}

/// Where an item's bytes are.
#[derive(Debug, Clone)]
pub enum ItemSource {
    /// A plain file.
    File(PathBuf),
    /// A member of a zip archive.
    ZipMember {
        /// The archive on disk.
        archive: Arc<PathBuf>,
        /// Index of the member in the central directory.
        index: usize,
        /// Compressed size as declared.
        compressed: u64,
        /// Bytes decompressed from this archive so far (shared by its members).
        archive_budget: Arc<AtomicU64>,
    },
}

/// The files of one target, and what could not be listed.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Files found.
    pub items: Vec<Item>,
    /// Files or folders that could not be listed or will not be read, with the reason.
    pub problems: Vec<Problem>,
    /// Files seen (items plus files that were found but not listed as items).
    pub files_seen: u64,
    /// Files the `unopened` test of [`inventory_with`] left out, counted per folder: (folder,
    /// files).
    pub unopened: Vec<(String, u64)>,
}

/// Decides from a file's lower-cased path components whether it is left out of the items (not
/// even opened); it is then only counted per folder.
pub type Unopened<'a> = &'a (dyn Fn(&[String]) -> bool + Sync);

/// Lists every file of `target` (a folder, a single file, or a `.zip`).
pub fn inventory(target: &Path, limits: &Limits) -> Inventory {
    inventory_with(target, limits, &|_| false)
}

/// Like [`inventory`], but files of a folder walk for which `unopened` says so are only counted
/// per folder: no path string, no item, nothing to open. A walk of a whole C: image then costs
/// about what `find` costs.
pub fn inventory_with(target: &Path, limits: &Limits, unopened: Unopened<'_>) -> Inventory {
    let mut inv = Inventory::default();
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) => {
            inv.problems.push(problem(
                Cause::Unreadable,
                target.display().to_string(),
                format!("cannot read target: {e}"),
                true,
            ));
            return inv;
        }
    };
    if meta.is_dir() {
        walk_dir(target, Some(limits), &mut inv, unopened);
    } else if is_zip_path(target) || sniff_zip(target) {
        inv.files_seen += 1;
        list_zip(target, target.display().to_string(), limits, &mut inv, true);
    } else {
        inv.files_seen += 1;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        inv.items.push(Item {
            display: target.display().to_string(),
            components: vec![name],
            size: meta.len(),
            modified: unix_secs(meta.modified().ok()),
            source: ItemSource::File(target.to_path_buf()),
        });
    }
    inv
}

fn problem(cause: Cause, path: String, reason: String, evidence_lost: bool) -> Problem {
    Problem::new(cause, reason)
        .at(path, None)
        .lost(evidence_lost)
}

/// The files of a folder as [`inventory_with`] lists them, without listing the members of the
/// zip archives found (a collection copies an archive whole).
pub fn files_of(root: &Path, unopened: Unopened<'_>) -> Inventory {
    let mut inv = Inventory::default();
    walk_dir(root, None, &mut inv, unopened);
    inv
}

fn walk_dir(root: &Path, zip_limits: Option<&Limits>, inv: &mut Inventory, unopened: Unopened<'_>) {
    // Unsorted: sorting each folder's entries by name cost more than the rest of the walk
    // (walkdir parses the path of both entries for every comparison). The items are put in
    // order once at the end instead, so output stays deterministic.
    let walker = walkdir::WalkDir::new(root).follow_links(false);
    // Lower-cased names of the folders above the current entry (`comps`, with the file's own
    // name pushed while it is judged) and the index of each folder in `folders` (display path,
    // files left out): kept as the walk goes, so a file left unopened costs one lower-casing of
    // its own name and no other allocation; only a kept file copies the names.
    let mut comps: Vec<String> = Vec::new();
    let mut folder_of: Vec<usize> = Vec::new();
    let mut folders: Vec<(String, u64)> = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| root.display().to_string());
                let reason = match e.io_error() {
                    Some(io) if io.kind() == io::ErrorKind::PermissionDenied => {
                        "permission denied: folder or file could not be read".to_string()
                    }
                    _ if e.loop_ancestor().is_some() => {
                        "symbolic link loop, not followed".to_string()
                    }
                    _ => format!("cannot list: {e}"),
                };
                inv.problems
                    .push(problem(Cause::Unreadable, path, reason, true));
                continue;
            }
        };
        let ft = entry.file_type();
        let depth = entry.depth();
        let above = depth.saturating_sub(1);
        comps.truncate(above);
        folder_of.truncate(above);
        if ft.is_dir() {
            if depth > 0 {
                comps.push(entry.file_name().to_string_lossy().to_lowercase());
                folder_of.push(folders.len());
            }
            folders.push((entry.path().display().to_string(), 0));
            continue;
        }
        inv.files_seen += 1;
        let path = entry.path();
        if ft.is_symlink() {
            inv.problems.push(problem(
                Cause::NotFollowed,
                path.display().to_string(),
                "symbolic link, not followed (a scan stays inside its target)".into(),
                false,
            ));
            continue;
        }
        if !ft.is_file() {
            inv.problems.push(problem(
                Cause::NotFollowed,
                path.display().to_string(),
                "not a regular file".into(),
                false,
            ));
            continue;
        }
        comps.push(entry.file_name().to_string_lossy().to_lowercase());
        if !is_zip_path(path) && unopened(&comps) {
            let folder = folder_of.last().copied().unwrap_or(0);
            if let Some(f) = folders.get_mut(folder) {
                f.1 += 1;
            }
            continue;
        }
        let components = comps.clone();
        // No stat here: a walk of a whole C: image must cost what `find` costs. Size and times
        // are read (Item::metadata) only for the files a scan opens.
        let (size, modified) = (0, None);
        if is_zip_path(path)
            && let Some(limits) = zip_limits
        {
            // The zip is an item (a staged archive is a finding) and a container.
            list_zip(path, path.display().to_string(), limits, inv, false);
        }
        inv.items.push(Item {
            display: path.display().to_string(),
            components,
            size,
            modified,
            source: ItemSource::File(path.to_path_buf()),
        });
    }
    inv.unopened = folders.into_iter().filter(|f| f.1 > 0).collect();
    inv.unopened.sort_unstable();
    inv.items.sort_by(|a, b| a.display.cmp(&b.display));
    inv.problems.sort_by(|a, b| a.path.cmp(&b.path));
}

fn is_zip_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn sniff_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

/// Splits a zip member name into lower-cased components, and says whether the name tries to
/// leave the archive root (absolute, drive letter, or `..`).
fn member_components(name: &str) -> (Vec<String>, bool) {
    let mut unsafe_name = name.starts_with('/') || name.starts_with('\\');
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        unsafe_name = true;
    }
    let mut comps = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => unsafe_name = true,
            p => comps.push(p.to_lowercase()),
        }
    }
    (comps, unsafe_name)
}

/// Lists a zip's members. `package`: the zip is the target itself, so a collector's manifest in
/// it is honoured; a zip found inside evidence (an attacker's archive) never renames its members.
fn list_zip(path: &Path, display: String, limits: &Limits, inv: &mut Inventory, package: bool) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            inv.problems.push(problem(
                Cause::Unreadable,
                display,
                format!("cannot open archive: {}", io_reason(&e)),
                true,
            ));
            return;
        }
    };
    let archive = match zip::ZipArchive::new(file) {
        Ok(a) => a,
        Err(e) => {
            inv.problems.push(problem(
                Cause::Unreadable,
                display,
                format!("not a readable zip archive: {e}"),
                true,
            ));
            return;
        }
    };
    let archive_path = Arc::new(path.to_path_buf());
    let budget = Arc::new(AtomicU64::new(0));
    let total = archive.len();
    if total > limits.max_zip_entries {
        inv.problems.push(problem(
            Cause::Limit,
            display.clone(),
            format!(
                "archive has {total} members, more than the limit of {}; only the first {} are read",
                limits.max_zip_entries, limits.max_zip_entries
            ),
            true,
        ));
    }
    let mut archive = archive;
    // A package written by `exhunt collect`: members are shown at their original paths and
    // times, and what the collector could not take is part of this target's coverage.
    let found = if package {
        crate::package::Origins::of(&mut archive)
    } else {
        None
    };
    let origins = match found {
        None => None,
        Some(Ok(o)) => {
            package_coverage(&o.manifest, inv);
            Some(o)
        }
        Some(Err(reason)) => {
            inv.problems.push(problem(
                Cause::Format,
                display.clone(),
                format!("{reason}; read as a plain zip"),
                false,
            ));
            None
        }
    };
    for index in 0..total.min(limits.max_zip_entries) {
        let member = match archive.by_index_raw(index) {
            Ok(m) => m,
            Err(e) => {
                inv.problems.push(problem(
                    Cause::Unreadable,
                    format!("{display}!#{index}"),
                    format!("unreadable archive member: {e}"),
                    true,
                ));
                continue;
            }
        };
        if member.is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(member.name_raw()).into_owned();
        let mut origin = None;
        let mut components_of = name.as_str();
        if let Some(o) = &origins {
            if name == crate::package::MANIFEST_NAME {
                continue;
            }
            if let Some(rest) = name.strip_prefix(crate::package::FILES_PREFIX) {
                components_of = rest;
                origin = o.members.get(&name);
            }
        }
        inv.files_seen += 1;
        let member_display = match origin {
            Some((original, _)) => original.clone(),
            None => format!("{display}!{name}"),
        };
        let (components, unsafe_name) = member_components(components_of);
        if unsafe_name {
            inv.problems.push(problem(
                Cause::NotFollowed,
                member_display.clone(),
                "member name leaves the archive root (absolute path or `..`); read in place, never extracted".into(),
                false,
            ));
        }
        if member.encrypted() {
            inv.problems.push(problem(
                Cause::Encrypted,
                member_display,
                "encrypted archive member, not read".into(),
                true,
            ));
            continue;
        }
        if components.last().is_some_and(|n| n.ends_with(".zip")) {
            // Still an item (a staged archive is a finding), but its members are not listed.
            // Only a zip in a log folder may hide log evidence the checks need.
            let in_logs = components.iter().any(|c| c == "logging" || c == "logfiles");
            inv.problems.push(problem(
                Cause::Limit,
                member_display.clone(),
                "archive inside an archive: its members are not read (nesting depth limit 1)"
                    .into(),
                in_logs,
            ));
        }
        let modified = member.last_modified().and_then(|d| {
            chrono::NaiveDate::from_ymd_opt(d.year().into(), d.month().into(), d.day().into())
                .and_then(|day| {
                    day.and_hms_opt(d.hour().into(), d.minute().into(), d.second().into())
                })
                .map(|t| t.and_utc().timestamp())
        });
        let modified = match origin {
            Some((_, t)) => *t,
            None => modified,
        };
        inv.items.push(Item {
            display: member_display,
            components,
            size: member.size(),
            modified,
            source: ItemSource::ZipMember {
                archive: archive_path.clone(),
                index,
                compressed: member.compressed_size(),
                archive_budget: budget.clone(),
            },
        });
    }
}

/// What a package's manifest says the collector did not take: one ledger line per file.
fn package_coverage(m: &crate::package::Manifest, inv: &mut Inventory) {
    for n in &m.not_collected {
        inv.problems.push(problem(
            Cause::NotCollected,
            n.original.clone(),
            format!("not in the package ({}): {}", n.what, n.reason),
            n.evidence_lost,
        ));
    }
    for f in &m.metadata_only {
        inv.problems.push(problem(
            Cause::NotCollected,
            f.original.clone(),
            format!(
                "in the package as metadata only ({}: {} bytes, SHA-256 {}): content not read",
                f.what, f.size, f.sha256
            ),
            false,
        ));
    }
}

fn unix_secs(t: Option<std::time::SystemTime>) -> Option<i64> {
    let t = t?;
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    }
}

/// A reason for an I/O error, in words an administrator reads.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "file vanished during the scan".into(),
        _ => e.to_string(),
    }
}

/// Opens items for reading. Keeps zip archives open between members; one per worker.
#[derive(Default)]
pub struct Opener {
    archives: Vec<(Arc<PathBuf>, zip::ZipArchive<File>)>,
}

impl Opener {
    /// A new opener with no archive open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens an item read-only and returns a stream of its bytes. Zip members are bounded by the
    /// limits: exceeding one ends the stream with an error that names the limit.
    pub fn open<'a>(&'a mut self, item: &Item, limits: &Limits) -> io::Result<Box<dyn Read + 'a>> {
        match &item.source {
            ItemSource::File(path) => Ok(Box::new(File::open(path)?)),
            ItemSource::ZipMember {
                archive,
                index,
                compressed,
                archive_budget,
            } => {
                let pos = match self.archives.iter().position(|(p, _)| p == archive) {
                    Some(pos) => pos,
                    None => {
                        let za = zip::ZipArchive::new(File::open(archive.as_path())?)
                            .map_err(io::Error::other)?;
                        if self.archives.len() >= 4 {
                            self.archives.remove(0);
                        }
                        self.archives.push((archive.clone(), za));
                        self.archives.len() - 1
                    }
                };
                let za = &mut self.archives[pos].1;
                let member = za.by_index(*index).map_err(io::Error::other)?;
                Ok(Box::new(BoundedReader {
                    inner: member,
                    read: 0,
                    compressed: (*compressed).max(1),
                    budget: archive_budget.clone(),
                    limits: *limits,
                }))
            }
        }
    }
}

/// A decompressing reader that stops at the zip limits with a clear error.
struct BoundedReader<R> {
    inner: R,
    read: u64,
    compressed: u64,
    budget: Arc<AtomicU64>,
    limits: Limits,
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let total = self.budget.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if self.read > self.limits.max_entry_bytes {
            return Err(limit_error(format!(
                "zip member decompresses to more than {} bytes (limit); rest not read",
                self.limits.max_entry_bytes
            )));
        }
        if total > self.limits.max_archive_bytes {
            return Err(limit_error(format!(
                "archive decompresses to more than {} bytes in total (limit); rest not read",
                self.limits.max_archive_bytes
            )));
        }
        if self.read > self.limits.ratio_grace_bytes
            && self.read / self.compressed > self.limits.max_ratio
        {
            return Err(limit_error(format!(
                "zip member expands more than {}:1 (possible zip bomb, limit); rest not read",
                self.limits.max_ratio
            )));
        }
        Ok(n)
    }
}

fn limit_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_renames_members_only_in_a_package_given_as_target() {
        use std::io::Write as _;
        let t = tempfile::tempdir().unwrap();
        let zip_path = t.path().join("p.zip");
        let mut zw = zip::ZipWriter::new(File::create(&zip_path).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        zw.start_file("files/inetpub/wwwroot/x.aspx", o).unwrap();
        zw.write_all(b"<%@ Page %>").unwrap();
        let manifest = crate::package::Manifest {
            format: crate::package::FORMAT.into(),
            files: vec![crate::package::FileEntry {
                original: r"C:\inetpub\wwwroot\x.aspx".into(),
                member: Some("files/inetpub/wwwroot/x.aspx".into()),
                modified: chrono::DateTime::from_timestamp(1_614_736_800, 0),
                ..Default::default()
            }],
            ..Default::default()
        };
        zw.start_file(crate::package::MANIFEST_NAME, o).unwrap();
        zw.write_all(&serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        zw.finish().unwrap();
        let inv = inventory(&zip_path, &Limits::default());
        assert_eq!(inv.items.len(), 1);
        assert_eq!(inv.items[0].display, r"C:\inetpub\wwwroot\x.aspx");
        assert_eq!(inv.items[0].components, ["inetpub", "wwwroot", "x.aspx"]);
        assert_eq!(inv.items[0].modified, Some(1_614_736_800));
        // The same zip found inside evidence keeps its members' own names.
        let inv = inventory(t.path(), &Limits::default());
        assert!(
            inv.items
                .iter()
                .any(|i| i.display.ends_with("p.zip!files/inetpub/wwwroot/x.aspx"))
        );
    }

    #[test]
    fn traversal_names_are_flagged() {
        assert!(member_components("../../etc/passwd").1);
        assert!(member_components("/abs/x.log").1);
        assert!(member_components("C:\\Windows\\x.log").1);
        let (c, bad) = member_components("V15/Logging/HttpProxy/Ecp/HttpProxy_2021030301-1.LOG");
        assert!(!bad);
        assert_eq!(c[2], "httpproxy");
    }
}
