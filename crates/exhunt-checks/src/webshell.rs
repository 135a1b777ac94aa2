//! The last link of the chain: requests for a file the attack wrote. Once pass one knows a
//! written path (OAB download, ECP reset, …), pass two searches the web logs for its URL.

use exhunt_model::{ArtefactKind, Confidence, Severity, Stage};
use exhunt_sources::Record;

use crate::check::{Emitter, Hit, LineCheck, lit, served};
use crate::proxylogon::request_entities;

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

/// EXH-PL-9: requests for the written files.
pub struct WebShellRequests {
    urls: Vec<String>,
}

impl WebShellRequests {
    /// Rule ids.
    pub const RULE_IDS: [&'static str; 1] = ["EXH-PL-9"];

    /// Looks for these URL paths.
    pub fn new(urls: Vec<String>) -> Self {
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
            .map(|u| lit(u.rsplit('/').next().unwrap_or(u)))
            .collect()
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let (stem, method) = match kind {
            ArtefactKind::IisLog => (rec.get("cs-uri-stem"), rec.get("cs-method")),
            _ => (rec.get("UrlStem"), rec.get("Method")),
        };
        let Some(stem) = stem else { return };
        let Some(url) = self.urls.iter().find(|u| u.eq_ignore_ascii_case(stem)) else {
            return;
        };
        let ent = request_entities(rec, kind);
        let code = ent.status;
        let used = served(code);
        let mut ent = ent;
        ent.file_path = Some(url.clone());
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-PL-9",
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
                confidence: Confidence::High,
                title: format!(
                    "{} {url} (file written by the chain) answered {}",
                    method.unwrap_or("request"),
                    code.map_or("?".into(), |c| c.to_string())
                ),
                entities: ent,
            },
        );
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
