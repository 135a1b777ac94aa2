//! What file checks judge by without reading a file's code: severities of rule metadata, the
//! clean-install name lists, benign archive producers and magic bytes.

use super::*;

/// A `severity` metadata word as a severity.
pub fn severity_word(w: &str) -> Option<Severity> {
    match w.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" | "informational" => Some(Severity::Info),
        _ => None,
    }
}

/// A signature-base style `score` (0–100) as a severity.
pub fn severity_score(score: u32) -> Severity {
    match score {
        90.. => Severity::Critical,
        70..=89 => Severity::High,
        50..=69 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// Server-side script extensions IIS executes.
const SCRIPT_EXT: &[&str] = &[
    ".aspx", ".ashx", ".asmx", ".asp", ".asax", ".ascx", ".cshtml", ".svc", ".php", ".jsp",
];

pub(super) fn ext_of(name: &str) -> &str {
    name.rfind('.').map_or("", |i| &name[i..])
}

pub(super) fn is_script(name: &str) -> bool {
    SCRIPT_EXT.contains(&ext_of(name))
}

/// A clean-install name list for one folder.
#[derive(Debug, Clone)]
pub struct CleanList {
    /// The folder, as lower-cased components (e.g. `frontend/httpproxy/owa/auth`).
    pub folder: Vec<String>,
    /// Names (lower-cased); `*.ext` entries match an extension.
    pub names: Vec<String>,
    /// Source file in `rules/clean/`.
    pub source: String,
}

impl CleanList {
    /// Parses a `rules/clean/*.txt` list.
    pub fn parse(source: &str, text: &str) -> Option<CleanList> {
        let mut folder = None;
        let mut names = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(f) = line.strip_prefix("# folder:") {
                folder = Some(
                    f.trim()
                        .split(['\\', '/'])
                        .map(|s| s.to_ascii_lowercase())
                        .collect::<Vec<_>>(),
                );
            } else if !line.is_empty() && !line.starts_with('#') {
                names.push(line.to_ascii_lowercase());
            }
        }
        Some(CleanList {
            folder: folder?,
            names,
            source: source.to_string(),
        })
    }

    /// Whether `components` (a file) lies directly in this list's folder.
    pub fn covers(&self, components: &[String]) -> bool {
        let dirs = &components[..components.len().saturating_sub(1)];
        dirs.len() >= self.folder.len() && dirs[dirs.len() - self.folder.len()..] == self.folder[..]
    }

    /// Whether the file name is expected in the folder.
    pub fn allows(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|n| match n.strip_prefix('*') {
            Some(ext) => name.ends_with(ext),
            None => *n == name,
        })
    }
}

/// Known benign producers of archives in staging places (CSS-Exchange #145, #311, #328): the
/// reason they are recognised, or `None`.
pub fn benign_archive(components: &[String]) -> Option<&'static str> {
    let name = components.last().map(String::as_str).unwrap_or("");
    let path = components.join("\\");
    if name.starts_with("vss_manifests") && name.ends_with(".zip") {
        return Some("VMware Tools VSS manifests (CSS-Exchange #145)");
    }
    if path.contains("mcafee") {
        return Some("McAfee framework or engine package (CSS-Exchange #311)");
    }
    if path.contains("apprecovery") {
        return Some("AppRecovery installer cache (CSS-Exchange #328)");
    }
    None
}

/// What the magic bytes of a file say it is, when that is a format a web shell hides in.
pub fn magic(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"!BDN") {
        Some("an Outlook PST (mailbox export)")
    } else if head.len() >= 4 && head[0] == 0x30 && head[1] == 0x82 {
        Some("a DER certificate or certificate request")
    } else if head.starts_with(b"MZ") {
        Some("a Windows executable (PE)")
    } else if head.starts_with(b"PK\x03\x04") {
        Some("a zip archive")
    } else if head.starts_with(b"MDMP") {
        Some("a memory dump")
    } else if head.starts_with(b"MSCF") {
        Some("a cabinet archive")
    } else {
        None
    }
}
