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
    /// Findings from logs in the rescan (history; not compared).
    pub history: usize,
}

impl Comparison {
    /// Whether the server is clean of what the earlier result found, with nothing new.
    pub fn clean(&self) -> bool {
        self.remains.is_empty() && self.new.is_empty()
    }
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
            let rel = crate::plan::relative_to_pub(&raw, &s.targets)
                .unwrap_or_else(|| raw.replace('\\', "/"));
            m.entry((s.name.to_lowercase(), f.rule_id.clone(), rel.to_lowercase()))
                .or_insert(Entry {
                    server: s.name.clone(),
                    rule_id: f.rule_id.clone(),
                    path: rel,
                    title: f.title.clone(),
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
