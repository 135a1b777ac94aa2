//! ProxyNotShell / OWASSRF (2022, CVE-2022-41040, -41082, -41080): the SSRF through OWA to the
//! PowerShell back end in IIS and HttpProxy logs (EXH-PNS-2), and remote PowerShell sessions of
//! foreign clients in the Rps_Http logs (EXH-PNS-3). The `autodiscover.json` SSRF with a mailbox
//! login (EXH-PNS-1) is the ProxyShell request shape and is judged in `crate::proxyshell`.
//! URLs are judged after the same decoding (percent-decoded twice, case-folded).

use exhunt_model::{ArtefactKind, Confidence, Severity, Stage};
use exhunt_sources::Record;

use crate::check::{Emitter, Hit, LineCheck, contains_ci, request_entities, status};
use crate::proxyshell::{grade, normalised_url, target_of, web_fields, web_needs};

/// User agents of Exchange's own remote PowerShell clients.
const OWN_CLIENTS: [&str; 3] = [
    "clientinfo",
    "microsoft winrm client",
    "exchange backend probes",
];

/// EXH-PNS-2 (C-PNS-B): OWASSRF, a POST through OWA to the PowerShell back end with an `@`
/// target, from a client that is not one of Exchange's own.
pub struct OwaSsrf;

impl LineCheck for OwaSsrf {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PNS-2"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog, ArtefactKind::HttpProxyLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        // The check emits only for a decoded URL with `/owa/` and `/powershell`: the raw line
        // has `/owa/` and `powershell` in one of its raw forms after it.
        vec![r"/owa/[^ ,]*(?:powershell|%[57]0owershell|%25[57]0owershell)".into()]
    }
    fn needs(&self, kind: ArtefactKind) -> &[&'static str] {
        web_needs(kind)
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let w = web_fields(kind, rec);
        let (stem, method) = (w.stem, w.method);
        let url = normalised_url(stem, w.query);
        // An `autodiscover.json` SSRF is ProxyShell's shape (`crate::proxyshell`), also when it
        // names OWA.
        if url.contains("autodiscover.json") || url.contains("autodiscover/autodiscover") {
            return;
        }
        let code = status(Some(w.status));
        let ua = w.agent.replace('+', " ").to_lowercase();
        let served = code.is_some_and(|c| (200..400).contains(&c));
        let code_s = code.map_or("no status".to_string(), |c| format!("status {c}"));
        let mut ent = request_entities(rec, kind);
        ent.url = Some(url.clone());

        if url.contains("/owa/")
            && url.contains("/powershell")
            && (url.contains('@') || contains_ci(stem, "%40"))
            && method.eq_ignore_ascii_case("POST")
            && !OWN_CLIENTS.iter().any(|c| ua.starts_with(c))
        {
            let (stage, severity, confidence, tail) =
                grade(served, "answered: remote PowerShell reached through OWA");
            out.emit(
                kind,
                rec,
                Hit {
                    rule_id: "EXH-PNS-2",
                    stage,
                    severity,
                    confidence,
                    title: format!(
                        "CVE-2022-41080/41082 OWASSRF: POST to {} ({code_s}; {tail})",
                        target_of(&url)
                    ),
                    entities: ent,
                },
            );
        }
    }
}

/// EXH-PNS-3 (C-PNS-C): a remote PowerShell session in the Rps_Http log whose client is not one
/// of Exchange's own. Exchange's management shell says `Microsoft WinRM Client`, its monitoring
/// `Exchange BackEnd Probes`; OWASSRF and ProxyNotShell sessions carry the attacker's client (a
/// browser or script user agent). The header row repeated inside a file (`ClientInfo`) is not a
/// session. Status 200: the session was served.
pub struct RpsForeignClient;

impl LineCheck for RpsForeignClient {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PNS-3"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::RpsHttpLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec!["(?i)powershell".into()]
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["ClientInfo", "HttpStatus"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let client = rec.get("ClientInfo").unwrap_or("").trim();
        let lower = client.to_ascii_lowercase();
        if client.is_empty() || client == "-" || OWN_CLIENTS.iter().any(|c| lower.starts_with(c)) {
            return;
        }
        let stem = rec.get("UrlStem").unwrap_or("");
        if !contains_ci(stem, "powershell") {
            return;
        }
        let code = status(rec.get("HttpStatus"));
        let g = |n: &str| rec.get(n).filter(|v| !v.is_empty() && *v != "-");
        let user = g("AuthenticatedUser").unwrap_or("an unauthenticated user");
        let route = format!(
            "{} → front end {} → back end {}",
            g("ClientIpAddress").unwrap_or("?"),
            g("FrontEndServer").unwrap_or("?"),
            g("ServerHostName").unwrap_or("?")
        );
        let (stage, severity, confidence, tail) = if code == Some(200) {
            (
                Stage::ExploitSuccess,
                Severity::Critical,
                Confidence::Medium,
                "served: a remote PowerShell session ran",
            )
        } else {
            (
                Stage::ExploitAttempt,
                Severity::High,
                Confidence::Medium,
                "not served",
            )
        };
        let code_s = code.map_or("no status".to_string(), |c| format!("status {c}"));
        let mut ent = request_entities(rec, kind);
        ent.user_agent = Some(client.chars().take(200).collect());
        let query = rec.get("UrlQuery").unwrap_or("");
        ent.url = Some(normalised_url(stem, query.trim_start_matches('?')));
        let mut cmd = String::new();
        if let Some(c) = g("CommandName") {
            cmd = format!(", command {c}");
        }
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-PNS-3",
                stage,
                severity,
                confidence,
                title: format!(
                    "Remote PowerShell by {user} with a foreign client \"{}\" ({route}{cmd}; {code_s}; {tail})",
                    ent.user_agent.as_deref().unwrap_or_default()
                ),
                entities: ent,
            },
        );
    }
}
