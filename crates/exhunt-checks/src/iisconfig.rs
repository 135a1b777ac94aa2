//! IIS configuration (`applicationHost.config`, C-PS-E): virtual directories that serve odd
//! folders.
//!
//! After ProxyShell, attackers added IIS virtual directories whose physical path is a folder
//! they control under `C:\ProgramData` (Huntress, August 2021: `COM`, `WHO`, `ZING`, `ZOO`,
//! `XYZ`, `AUX`, `CON`) or under `C:\Users`, so that files they drop there are served as pages:
//! a web shell outside every web root a file check looks at. An Exchange server's own sites map
//! to `inetpub\wwwroot` and the Exchange install; nothing of Exchange or IIS lives in
//! ProgramData or a user profile.
//!
//! The same file tells whether Microsoft's emergency mitigations are configured (C-PNS-E): the
//! URL Rewrite rules of EOMT (ProxyLogon: abort requests whose cookie carries
//! `X-AnonResource-Backend` or an `X-BEResource` path) and of EOMTv2 / EEMS (ProxyNotShell:
//! abort URLs with both `autodiscover` and `powershell`). They are reported beside the verdict,
//! with the weakness of the early patterns that were bypassed (a raw `{REQUEST_URI}` input
//! misses `%`-escaped requests, CSS-Exchange #1262/#1269; patterns that demand
//! `autodiscover.json` and `@` miss the variants).
//!
//! The file is read as text, not as XML: a tag scanner follows the nesting of `site`,
//! `application` and `virtualDirectory` to name the URL a directory serves, and a file that is
//! not well-formed XML (an attacker's edit, a truncated copy) is still read.

use std::sync::LazyLock;

use exhunt_model::{
    ArtefactKind, Campaign, Confidence, Entities, Evidence, Finding, Mitigation, Severity, Stage,
    Timestamp,
};
use exhunt_rules::RulePack;
use exhunt_sources::webroots::{attr, served_folders};
use regex::Regex;

static RULE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<rule\b([^>]*)>(.*?)</rule>").expect("valid regex"));
static INPUT_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(input|pattern|url)\s*=\s*"([^"]*)""#).expect("valid regex")
});
static ABORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<action\b[^>]*\btype\s*=\s*"AbortRequest""#).expect("valid regex")
});

/// The URL Rewrite rules that abort what an emergency mitigation aborts.
pub fn mitigations(display: &str, text: &str) -> Vec<Mitigation> {
    let mut out = Vec::new();
    for c in RULE.captures_iter(text) {
        let head = c.get(1).map_or("", |m| m.as_str());
        let body = c.get(2).map_or("", |m| m.as_str());
        if !ABORT.is_match(body) {
            continue;
        }
        let mut inputs = Vec::new();
        let mut patterns = Vec::new();
        for a in INPUT_PATTERN.captures_iter(body) {
            if a[1].eq_ignore_ascii_case("input") {
                inputs.push(a[2].to_string());
            } else {
                patterns.push(a[2].to_string());
            }
        }
        let all = patterns.join(" ").to_ascii_lowercase();
        let campaign = if all.contains("autodiscover") && all.contains("powershell") {
            Campaign::ProxyNotShell
        } else if all.contains("x-anonresource-backend") || all.contains("x-beresource") {
            Campaign::ProxyLogon
        } else {
            continue;
        };
        let mut weakness = Vec::new();
        if campaign == Campaign::ProxyNotShell {
            if !inputs
                .iter()
                .any(|i| i.to_ascii_lowercase().contains("urldecode"))
            {
                weakness.push("it matches the raw URL, so %-escaped requests pass (CSS-Exchange #1262, #1269)");
            }
            if all.contains("autodiscover\\.json") && all.contains('@') {
                weakness.push(
                    "its pattern demands autodiscover.json and '@', which later variants avoid",
                );
            }
        }
        let start = c.get(0).map_or(0, |m| m.start());
        out.push(Mitigation {
            campaign,
            rule: attr(head, "name").unwrap_or("(unnamed)").to_string(),
            path: display.to_string(),
            line: text[..start].bytes().filter(|&b| b == b'\n').count() as u64 + 1,
            matches: inputs
                .iter()
                .map(|i| format!("{i} "))
                .chain(patterns.iter().map(|p| format!("~ {p} ")))
                .collect::<String>()
                .trim()
                .to_string(),
            weakness: (!weakness.is_empty()).then(|| weakness.join("; ")),
        });
    }
    out
}

/// The rules this module emits.
pub const RULE_IDS: [&str; 1] = ["EXH-PS-2"];

/// Folder names the 2021 ProxyShell intrusions used under ProgramData.
const KNOWN: [&str; 7] = ["com", "who", "zing", "zoo", "xyz", "aux", "con"];

/// Why a physical path is odd for a served folder, and how sure that is; `None` when it is not.
fn odd_folder(physical: &str) -> Option<(Confidence, String)> {
    let p = physical
        .to_ascii_lowercase()
        .replace('/', "\\")
        .replace("%systemdrive%", "c:")
        .replace("%programdata%", "c:\\programdata")
        .replace("%allusersprofile%", "c:\\programdata");
    let parts: Vec<&str> = p.split('\\').filter(|s| !s.is_empty()).collect();
    let pos = parts
        .iter()
        .position(|s| *s == "programdata" || *s == "users")?;
    let under = parts.get(pos + 1).copied().unwrap_or("");
    let first = under.split('.').next().unwrap_or(under);
    if parts[pos] == "programdata" && KNOWN.contains(&first) {
        return Some((
            Confidence::High,
            format!("ProgramData\\{under}, a folder name of the 2021 ProxyShell intrusions"),
        ));
    }
    Some((
        Confidence::Medium,
        format!(
            "a folder under {} (nothing of IIS or Exchange is served from there)",
            if parts[pos] == "users" {
                "C:\\Users"
            } else {
                "C:\\ProgramData"
            }
        ),
    ))
}

/// Judges one configuration file's text.
pub fn judge(
    pack: &RulePack,
    display: &str,
    text: &str,
    modified: Option<Timestamp>,
) -> Vec<Finding> {
    let Some(meta) = pack.rule("EXH-PS-2") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in served_folders(text) {
        let Some((confidence, why)) = odd_folder(&f.physical) else {
            continue;
        };
        let site_name = if f.site.is_empty() {
            "?"
        } else {
            f.site.as_str()
        };
        out.push(Finding {
            id: String::new(),
            rule_id: meta.id.clone(),
            title: format!(
                "IIS serves {} of site \"{site_name}\" from {}: {why}",
                f.url, f.physical
            ),
            campaign: meta.campaign,
            cves: meta.cves.clone(),
            attack: meta.attack.clone(),
            severity: Severity::High,
            confidence,
            stage: Stage::Persistence,
            timestamp: modified,
            evidence: Evidence {
                path: display.to_string(),
                line: f.line,
                offset: f.offset,
                excerpt: f.element,
            },
            entities: Entities {
                file_path: Some(f.physical),
                url: Some(f.url),
                ..Entities::default()
            },
            kind: ArtefactKind::IisConfig,
            joins: meta.joins.clone(),
            outcome: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_folders_and_ordinary_ones() {
        assert_eq!(
            odd_folder(r"C:\ProgramData\COM\").unwrap().0,
            Confidence::High
        );
        assert_eq!(
            odd_folder(r"%SystemDrive%\ProgramData\zing").unwrap().0,
            Confidence::High
        );
        assert_eq!(
            odd_folder(r"C:\Users\All Users\x").unwrap().0,
            Confidence::Medium
        );
        assert_eq!(
            odd_folder(r"C:\ProgramData\Vendor\web").unwrap().0,
            Confidence::Medium
        );
        assert!(odd_folder(r"%SystemDrive%\inetpub\wwwroot").is_none());
        assert!(
            odd_folder(r"C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\owa")
                .is_none()
        );
        assert!(odd_folder(r"D:\Exchange\ClientAccess\owa").is_none());
    }
}
