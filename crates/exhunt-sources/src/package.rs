//! The triage package written by `exhunt collect`: its layout and its manifest.
//!
//! Why here: the package is written by `exhunt-collect` and read by the scanner's inventory,
//! which must show a finding at the file's *original* path and time (a zip member's name is
//! relative and its DOS time has two-second steps and no time zone). One definition of the
//! manifest serves both, so what the collector writes is what the scanner reads.
//!
//! Layout: every collected file is the member `files/<path relative to the target>` (with `/`
//! separators; files of a second drive of a live server under `files/<letter>_/…`), and the
//! manifest is the member [`MANIFEST_NAME`], written last because it holds the hashes of what
//! was streamed before it.

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Name of the manifest member.
pub const MANIFEST_NAME: &str = "exhunt-manifest.json";

/// Folder of the package holding the collected files.
pub const FILES_PREFIX: &str = "files/";

/// Value of [`Manifest::format`].
pub const FORMAT: &str = "exhunt-collect/1";

/// Largest manifest read (a million files take about 400 MB; a package claiming more is not
/// trusted).
pub const MAX_MANIFEST: u64 = 1 << 30;

/// The manifest of a package.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The collector: `exhunt <version>`.
    pub collector: String,
    /// Host the collection ran on.
    pub collected_on: Option<String>,
    /// The server the evidence is from, when known (the live host; for an image, the name its
    /// logs give).
    pub host_name: Option<String>,
    /// What was collected: `live system`, or the image or folder given.
    pub target: String,
    /// Exchange install folder, as found.
    pub exchange_install_path: Option<String>,
    /// Exchange build, as the server's logs or registry give it.
    pub exchange_build: Option<String>,
    /// Collection start.
    pub started: DateTime<Utc>,
    /// Collection end.
    pub finished: DateTime<Utc>,
    /// Options of the collection, as given.
    pub options: CollectedWith,
    /// Files whose content is in the package.
    pub files: Vec<FileEntry>,
    /// Files of which only the metadata is recorded (path, size, times, hash).
    pub metadata_only: Vec<FileEntry>,
    /// Files that are not in the package, and why.
    pub not_collected: Vec<NotCollected>,
}

/// Options a collection ran with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CollectedWith {
    /// `--since`.
    pub since: Option<DateTime<Utc>>,
    /// `--max-size`, bytes.
    pub max_size: Option<u64>,
    /// Content limit for dumps and archives, bytes.
    pub max_dump_size: u64,
    /// `--message-tracking`.
    pub message_tracking: bool,
}

/// One file of the source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileEntry {
    /// Original path, as the scanner would show it when scanning the source.
    pub original: String,
    /// Member name in the package (`None` for metadata only).
    pub member: Option<String>,
    /// What it is (the location list's words).
    pub what: String,
    /// Bytes read (the content in the package, or hashed).
    pub size: u64,
    /// Creation time, where the file system keeps it.
    pub created: Option<DateTime<Utc>>,
    /// Last modification.
    pub modified: Option<DateTime<Utc>>,
    /// Last access, as it was before the collection read the file.
    pub accessed: Option<DateTime<Utc>>,
    /// SHA-256 of the bytes read, hex.
    pub sha256: String,
    /// How it was read (`read-only, no access-time update`, `event log API export`…).
    pub read: String,
    /// Anything that happened while reading (grew, shrank, changed).
    pub note: Option<String>,
}

/// A file that is not in the package.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotCollected {
    /// Original path.
    pub original: String,
    /// What it is.
    pub what: String,
    /// Why it is not in the package.
    pub reason: String,
    /// Whether evidence is missing from the package because of it (unreadable, vanished, did
    /// not fit), as opposed to left out by an option (`--since`).
    pub evidence_lost: bool,
}

/// Where each member of a package came from.
#[derive(Debug, Default)]
pub struct Origins {
    /// Member name → (original path, modification time in seconds since the epoch).
    pub members: HashMap<String, (String, Option<i64>)>,
    /// The manifest.
    pub manifest: Manifest,
}

impl Origins {
    /// Reads the manifest of an open zip archive, if it is a package.
    pub fn of<R: Read + std::io::Seek>(
        archive: &mut zip::ZipArchive<R>,
    ) -> Option<Result<Origins, String>> {
        let member = archive.by_name(MANIFEST_NAME).ok()?;
        if member.size() > MAX_MANIFEST {
            return Some(Err(format!(
                "package manifest of {} bytes is larger than the limit of {MAX_MANIFEST}",
                member.size()
            )));
        }
        let mut text = Vec::new();
        if let Err(e) = member.take(MAX_MANIFEST).read_to_end(&mut text) {
            return Some(Err(format!("package manifest cannot be read: {e}")));
        }
        let manifest: Manifest = match serde_json::from_slice(&text) {
            Ok(m) => m,
            Err(e) => return Some(Err(format!("package manifest is not valid: {e}"))),
        };
        if manifest.format != FORMAT {
            return Some(Err(format!(
                "package manifest format `{}` is not the `{FORMAT}` this version reads",
                manifest.format
            )));
        }
        let members = manifest
            .files
            .iter()
            .filter_map(|f| {
                let m = f.member.clone()?;
                Some((m, (f.original.clone(), f.modified.map(|t| t.timestamp()))))
            })
            .collect();
        Some(Ok(Origins { members, manifest }))
    }
}
