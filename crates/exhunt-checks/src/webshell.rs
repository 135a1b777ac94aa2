//! The last link of the chain: requests for a file the attack wrote. Once pass one knows a
//! written path (OAB download, ECP reset, …), pass two searches the web logs for its URL.

use exhunt_model::{ArtefactKind, Confidence, Finding, Severity, Stage, Timestamp};
use exhunt_sources::Record;

use crate::check::request_entities;
use crate::check::{Emitter, Hit, LineCheck, lit, served};

/// The URL path under which IIS serves a Windows path, if it lies in a web root:
/// `…\inetpub\wwwroot\aspnet_client\s.aspx` → `/aspnet_client/s.aspx`,
/// `…\FrontEnd\HttpProxy\owa\auth\x.aspx` → `/owa/auth/x.aspx`.
pub fn url_of_written_path(path: &str) -> Option<String> {
    let norm = path.replace('/', "\\");
    let lower = norm.to_ascii_lowercase();
    for root in ["\\inetpub\\wwwroot\\", "\\frontend\\httpproxy\\"] {
        if let Some(i) = lower.find(root) {
            let rest = &norm[i + root.len()..];
            if rest.is_empty() {
                return None;
            }
            return Some(format!("/{}", rest.replace('\\', "/")));
        }
    }
    None
}

/// The URL of the file a log finding says was written (the OAB download path, the ECP reset
/// path, a file event), when it lies in a web root. The story, the correlation and the second
/// pass all start from it.
pub fn written_url(f: &Finding) -> Option<String> {
    if !f.kind.is_log() {
        return None;
    }
    f.entities
        .file_path
        .as_deref()
        .and_then(url_of_written_path)
}

/// The URLs pass two searches the IIS logs for: files the chain wrote, and suspicious web-root
/// files found on disk — with the time of the earliest write when every URL is a written one
/// (a file found on disk has no trustworthy write time: attackers set file times).
pub fn urls_to_follow(findings: &[Finding]) -> (Vec<(String, UrlSource)>, Option<Timestamp>) {
    let mut urls: Vec<(String, UrlSource)> = Vec::new();
    for f in findings {
        if let Some(u) = written_url(f) {
            urls.push((u, UrlSource::Chain));
        } else if !f.kind.is_log()
            && f.stage >= Stage::Persistence
            // A file listed only for review (its place, not its content) is not searched for:
            // requests to an intranet page say nothing about a web shell.
            && f.confidence >= Confidence::Medium
            && let Some(u) = &f.entities.url
        {
            urls.push((u.clone(), UrlSource::Disk));
        }
    }
    urls.sort_by(|a, b| {
        (a.0.to_ascii_lowercase(), a.1 as u8).cmp(&(b.0.to_ascii_lowercase(), b.1 as u8))
    });
    urls.dedup();
    // IIS logs every request of the site, including files IIS serves itself (the web roots are
    // not proxied), so they are enough. With only chain-written paths, only logs that reach
    // past the earliest write can hold a request for them.
    let written_at = if urls.iter().any(|(_, s)| *s == UrlSource::Disk) {
        None
    } else {
        findings
            .iter()
            .filter(|f| f.kind.is_log() && f.entities.file_path.is_some())
            .filter_map(|f| f.timestamp)
            .min()
    };
    (urls, written_at)
}

/// The URL of a file given by its lower-cased path components relative to a target, if it lies
/// under a web root (`inetpub\wwwroot\…` or `FrontEnd\HttpProxy\…`).
pub fn url_of_components(c: &[String]) -> Option<String> {
    for (a, b) in [("inetpub", "wwwroot"), ("frontend", "httpproxy")] {
        if let Some(i) = c.windows(2).position(|w| w[0] == a && w[1] == b) {
            let rest = &c[i + 2..];
            if !rest.is_empty() {
                return Some(format!("/{}", rest.join("/")));
            }
        }
    }
    // A copied aspnet_client folder without its site root.
    let i = c.iter().position(|d| d == "aspnet_client")?;
    Some(format!("/{}", c[i..].join("/")))
}

/// EXH-FS-7: requests for published web-shell paths (probing, or use when answered 200).
pub struct KnownShellRequests {
    urls: Vec<String>,
}

impl KnownShellRequests {
    /// From the published web-shell paths.
    pub fn new(paths: &[exhunt_rules::Ioc]) -> Self {
        let mut urls: Vec<String> = paths
            .iter()
            .filter_map(|p| url_of_written_path(&p.indicator))
            .collect();
        urls.sort_by_key(|u| u.to_ascii_lowercase());
        urls.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        KnownShellRequests { urls }
    }
}

impl LineCheck for KnownShellRequests {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-FS-7"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        self.urls.iter().map(|u| lit(u)).collect()
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["cs-uri-stem", "sc-status"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let Some(stem) = rec.get("cs-uri-stem") else {
            return;
        };
        if !self.urls.iter().any(|u| u.eq_ignore_ascii_case(stem)) {
            return;
        }
        let mut ent = request_entities(rec, kind);
        ent.file_path = Some(stem.to_string());
        let used = ent.status == Some(200);
        let code = ent.status.map_or("?".into(), |c| c.to_string());
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-FS-7",
                stage: if used {
                    Stage::WebShellUse
                } else {
                    Stage::Scan
                },
                severity: if used { Severity::High } else { Severity::Low },
                confidence: Confidence::Medium,
                title: if used {
                    format!("Published web-shell path {stem} answered 200")
                } else {
                    format!("Probe for a published web-shell path: {stem} ({code})")
                },
                entities: ent,
            },
        );
    }
}

/// Where a URL of the second pass comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    /// A file the logs show being written (an exploitation chain's write, or a file event);
    /// whose chain it was is decided by `correlate`.
    Chain,
    /// A suspicious file found on disk in a web root.
    Disk,
}

/// EXH-PL-9 / EXH-FS-8: requests for files the chain wrote or suspicious files on disk.
pub struct WebShellRequests {
    urls: Vec<(String, UrlSource)>,
}

impl WebShellRequests {
    /// Rule ids.
    pub const RULE_IDS: [&'static str; 2] = ["EXH-PL-9", "EXH-FS-8"];

    /// Looks for these URL paths.
    pub fn new(urls: Vec<(String, UrlSource)>) -> Self {
        WebShellRequests { urls }
    }
}

impl LineCheck for WebShellRequests {
    fn rule_ids(&self) -> &[&'static str] {
        &Self::RULE_IDS
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog, ArtefactKind::HttpProxyLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        // The file name is enough for the prefilter; the field compare decides.
        self.urls
            .iter()
            .map(|(u, _)| lit(u.rsplit('/').next().unwrap_or(u)))
            .collect()
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let (stem, method) = match kind {
            ArtefactKind::IisLog => (rec.get("cs-uri-stem"), rec.get("cs-method")),
            _ => (rec.get("UrlStem"), rec.get("Method")),
        };
        let Some(stem) = stem else { return };
        // A URL both written by the chain and found on disk is reported once, as the chain's.
        let Some((url, source)) = self
            .urls
            .iter()
            .filter(|(u, _)| u.eq_ignore_ascii_case(stem))
            .min_by_key(|(_, s)| *s != UrlSource::Chain)
        else {
            return;
        };
        let mut ent = request_entities(rec, kind);
        let code = ent.status;
        let used = served(code);
        ent.file_path = Some(url.clone());
        let (rule_id, what) = match source {
            // `correlate` names the chain that wrote it.
            UrlSource::Chain => ("EXH-PL-9", "file written by the chain"),
            UrlSource::Disk => ("EXH-FS-8", "suspicious file on disk"),
        };
        let hit = Hit {
            rule_id,
            stage: if used {
                Stage::WebShellUse
            } else {
                Stage::ExploitAttempt
            },
            severity: if used {
                Severity::Critical
            } else {
                Severity::High
            },
            confidence: if used || *source == UrlSource::Chain {
                Confidence::High
            } else {
                Confidence::Medium
            },
            title: format!(
                "{} {url} ({what}) answered {}",
                method.unwrap_or("request"),
                code.map_or("?".into(), |c| c.to_string())
            ),
            entities: ent,
        };
        out.emit(kind, rec, hit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_paths_map_to_urls() {
        assert_eq!(
            url_of_written_path(r"\\127.0.0.1\c$\inetpub\wwwroot\aspnet_client\shell.aspx")
                .as_deref(),
            Some("/aspnet_client/shell.aspx")
        );
        assert_eq!(
            url_of_written_path(r"C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\owa\auth\Err.aspx")
                .as_deref(),
            Some("/owa/auth/Err.aspx")
        );
        assert_eq!(url_of_written_path(r"C:\Windows\Temp\x.aspx"), None);
    }
}
