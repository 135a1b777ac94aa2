//! Saved results (`exhunt scan --format json`): loaded with the checks that keep a report
//! faithful, and merged into one report of several servers.
//!
//! A truncated file, a file that is not an exhunt result and a result of another major schema
//! version are refused: rendering them would show less than they hold without saying so. A newer
//! minor version is read, with a warning that fields added since are not shown. Merging keeps
//! every server as it was; a server found in two results is kept twice, with a warning.

use std::path::Path;

use exhunt_model::{SCHEMA_VERSION, ScanResult, VerdictKind};

/// Why a saved result cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not complete JSON.
    #[error(
        "{path} is not a complete JSON result (truncated or not written by `exhunt scan --format json`)"
    )]
    NotJson {
        /// The file.
        path: String,
    },
    /// JSON without a schema version.
    #[error("{path} has no schema_version: not an exhunt result")]
    NotAResult {
        /// The file.
        path: String,
    },
    /// Another major schema version.
    #[error(
        "{path} uses result schema {found}; this exhunt reads schema {major}.x (its own is {ours})"
    )]
    OtherMajor {
        /// The file.
        path: String,
        /// Its schema version.
        found: String,
        /// The major version read here.
        major: String,
        /// This build's schema version.
        ours: &'static str,
    },
    /// The right version, but not the schema's shape.
    #[error("{path} does not follow result schema {found} (edited, or written by another tool)")]
    Malformed {
        /// The file.
        path: String,
        /// Its schema version.
        found: String,
    },
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or("")
}

fn minor(v: &str) -> u32 {
    v.split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Reads one saved result; the warnings (a newer minor version) are returned beside it.
pub fn load(path: &Path) -> Result<(ScanResult, Vec<String>), LoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| LoadError::NotJson {
        path: shown.clone(),
    })?;
    let found = value
        .get("schema_version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| LoadError::NotAResult {
            path: shown.clone(),
        })?;
    if major(&found) != major(SCHEMA_VERSION) {
        return Err(LoadError::OtherMajor {
            path: shown,
            major: major(SCHEMA_VERSION).to_string(),
            found,
            ours: SCHEMA_VERSION,
        });
    }
    let mut warnings = Vec::new();
    if minor(&found) > minor(SCHEMA_VERSION) {
        warnings.push(format!(
            "{shown} was written with result schema {found}, newer than this exhunt's {SCHEMA_VERSION}: fields added since are not shown"
        ));
    }
    let result =
        serde_json::from_value(value).map_err(|_| LoadError::Malformed { path: shown, found })?;
    Ok((result, warnings))
}

/// Merges results (each with the name of the file it came from) into one: every server kept as
/// it was, the time span widened, the verdict the worst of the servers'. Returns the warnings (a
/// server seen in two results). `None` for no result.
pub fn merge(results: Vec<(String, ScanResult)>) -> Option<(ScanResult, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut merged: Option<ScanResult> = None;
    for (file, r) in results {
        for s in &r.servers {
            if let Some((_, first)) = seen.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s.name)) {
                warnings.push(format!(
                    "server {} is in {first} and in {file}: both results are kept, side by side (nothing is merged or dropped)",
                    s.name
                ));
            }
            seen.push((s.name.clone(), file.clone()));
        }
        merged = Some(match merged {
            None => r,
            Some(mut m) => {
                m.started = m.started.min(r.started);
                m.finished = m.finished.max(r.finished);
                m.servers.extend(r.servers);
                m
            }
        });
    }
    let mut result = merged?;
    result.verdict = VerdictKind::worst(result.servers.iter().map(|s| s.verdict));
    Some((result, warnings))
}
