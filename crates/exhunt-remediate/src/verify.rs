//! Verify: the result before the cleanup against a rescan after it.
//!
//! Only what cleanup can change is compared: findings made from files on disk and from the IIS
//! configuration (the current state). Findings from logs and event logs are history — cleanup
//! does not and must not change them — and are counted, not compared. Paths are compared
//! relative to each result's scan target, so a rescan of a copy or of a mounted image at
//! another path still matches.

use std::collections::BTreeMap;

use exhunt_model::{ArtefactKind, Finding, ScanResult};
use serde::Serialize;

/// One state finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Server.
    pub server: String,
    /// Rule.
    pub rule_id: String,
    /// The file (relative to the target when it lies under it).
    pub path: String,
    /// Title.
    pub title: String,
    /// A file on disk (not the IIS configuration): its absence can be checked.
    #[serde(skip)]
    pub file: bool,
    /// Whether `path` is relative to the scan target.
    #[serde(skip)]
    pub relative: bool,
}

/// The comparison.
#[derive(Debug, Default, Serialize)]
pub struct Comparison {
    /// In the earlier result, not in the rescan.
    pub cleaned: Vec<Entry>,
    /// In both.
    pub remains: Vec<Entry>,
    /// Only in the rescan.
    pub new: Vec<Entry>,
    /// Not found by the rescan, but the file is still on disk (and is not apply's stub): not
    /// counted as cleaned (the rescan may not have looked at it the same way).
    pub unconfirmed: Vec<Entry>,
    /// Findings from logs in the rescan (history; not compared).
    pub history: usize,
}

impl Comparison {
    /// Whether the server is clean of what the earlier result found, with nothing new.
    pub fn clean(&self) -> bool {
        self.remains.is_empty() && self.new.is_empty() && self.unconfirmed.is_empty()
    }
}

/// Refuses a rescan that is not of the same servers: every server of the earlier result must
/// be in the rescan (by name, case-insensitive), or everything would look cleaned.
pub fn check_servers(before: &ScanResult, after: &ScanResult) -> Result<(), String> {
    let names: Vec<String> = after
        .servers
        .iter()
        .map(|s| s.name.to_lowercase())
        .collect();
    let missing: Vec<&str> = before
        .servers
        .iter()
        .filter(|s| !names.contains(&s.name.to_lowercase()))
        .map(|s| s.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the rescan does not show the server(s) {} of the earlier result (it shows {}): not the same server or not the same kind of target; nothing compared",
            missing.join(", "),
            if after.servers.is_empty() {
                "none".to_string()
            } else {
                after
                    .servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))
    }
}

/// Checks each file counted as cleaned on disk under `target` (the rescanned target): one that
/// is still there (other than apply's stub) moves to [`Comparison::unconfirmed`].
pub fn confirm_cleaned(c: &mut Comparison, target: &std::path::Path) {
    let mut keep = Vec::new();
    for e in std::mem::take(&mut c.cleaned) {
        // Only a file under the target can be looked for (a path of the server named by a
        // package is not on this disk: the rescan is the only check there).
        if !e.file || !e.relative {
            keep.push(e);
            continue;
        }
        let path = crate::apply::locate(&e.path, Some(&e.path), Some(target)).ok();
        let present = match &path {
            Some(p) => {
                std::fs::symlink_metadata(p).is_ok()
                    && std::fs::read(p).ok().as_deref() != Some(crate::apply::STUB)
            }
            // A path that cannot be looked at is not confirmed gone.
            None => true,
        };
        if present {
            c.unconfirmed.push(e);
        } else {
            keep.push(e);
        }
    }
    c.cleaned = keep;
}

fn state(f: &Finding) -> bool {
    matches!(
        f.kind,
        ArtefactKind::WebFile
            | ArtefactKind::MemoryDump
            | ArtefactKind::Archive
            | ArtefactKind::File
            | ArtefactKind::IisConfig
    )
}

fn key(r: &ScanResult) -> BTreeMap<(String, String, String), Entry> {
    let mut m = BTreeMap::new();
    for s in &r.servers {
        for f in s.findings.iter().filter(|f| state(f)) {
            let raw = if f.kind == ArtefactKind::IisConfig {
                // The served folder: the config file stays, the virtual directory goes.
                format!(
                    "{} {}",
                    f.entities.url.as_deref().unwrap_or(""),
                    f.entities.file_path.as_deref().unwrap_or("")
                )
            } else {
                f.entities
                    .file_path
                    .clone()
                    .unwrap_or_else(|| f.evidence.path.clone())
            };
            let relative = crate::plan::relative_to_pub(&raw, &s.targets);
            let is_relative = relative.is_some();
            let rel = relative.unwrap_or_else(|| raw.replace('\\', "/"));
            m.entry((s.name.to_lowercase(), f.rule_id.clone(), rel.to_lowercase()))
                .or_insert(Entry {
                    server: s.name.clone(),
                    rule_id: f.rule_id.clone(),
                    path: rel,
                    title: f.title.clone(),
                    file: f.kind != ArtefactKind::IisConfig,
                    relative: is_relative,
                });
        }
    }
    m
}

/// Compares the result before with the rescan after.
pub fn compare(before: &ScanResult, after: &ScanResult) -> Comparison {
    let b = key(before);
    let a = key(after);
    let mut c = Comparison {
        history: after
            .servers
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| !state(f))
            .count(),
        ..Comparison::default()
    };
    for (k, e) in &b {
        if a.contains_key(k) {
            c.remains.push(e.clone());
        } else {
            c.cleaned.push(e.clone());
        }
    }
    for (k, e) in &a {
        if !b.contains_key(k) {
            c.new.push(e.clone());
        }
    }
    c
}
