//! ProxyShell (2021) and ProxyNotShell / OWASSRF (2022): the front-end SSRF shapes in IIS logs.
//!
//! Every check here judges the URL after percent-decoding (twice, for double encoding) and case
//! folding, because the first public mitigation patterns matched the raw URL and were bypassed
//! with `%`-escapes and mixed case (CSS-Exchange #1262, #1269): `AutoDiscover.JSON`,
//! `%50owershell` and `autodiscover.json%3F@` are all the same request to Exchange.
//!
//! What the IIS log shows: the stem is logged as IIS routed it (`/autodiscover/autodiscover.json`,
//! `/owa/<mailbox>/powershell`), the SSRF target rides in the query. So the block prefilter looks
//! for `autodiscover` anywhere on the line and for `/owa/…powershell`; the decision is made on the
//! decoded URL.
//!
//! ProxyShell's SSRF (CVE-2021-34473) is pre-authentication, ProxyNotShell's (CVE-2022-41040)
//! needs a mailbox login: an `autodiscover.json` SSRF to the PowerShell back end with a user name
//! in `cs-username` is ProxyNotShell, without one ProxyShell. Probes of vulnerability scanners
//! (nuclei, Nessus: `@test.com/owa/?&Email=autodiscover/autodiscover.json%3F@test.com`) are
//! scans, not attacks.

use exhunt_model::{ArtefactKind, Confidence, Severity, Stage};
use exhunt_sources::Record;

use crate::check::{Emitter, Hit, LineCheck, contains_ci, status};
use crate::proxylogon::request_entities;

/// Percent-decodes a URL (invalid escapes are kept as they are), lossy for non-UTF-8 bytes.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL of a request as Exchange sees it: stem and query joined, percent-decoded twice, lower
/// case.
pub fn normalised_url(stem: &str, query: &str) -> String {
    let raw = if query.is_empty() || query == "-" {
        stem.to_string()
    } else {
        format!("{stem}?{query}")
    };
    percent_decode(&percent_decode(&raw)).to_lowercase()
}

/// Target domains of vulnerability scanners' probes.
const PROBE_DOMAINS: [&str; 8] = [
    "@test.com",
    "@mss.com",
    "@foo.var",
    "@example.com",
    "@localhost",
    "oast.",
    "interact.sh",
    "@test.local",
];

/// User agents of Exchange's own remote PowerShell clients.
const OWN_CLIENTS: [&str; 3] = [
    "clientinfo",
    "microsoft winrm client",
    "exchange backend probes",
];

/// The `autodiscover.json` SSRF (ProxyShell, ProxyNotShell) and OWASSRF in IIS logs.
pub struct ProxyShellRequests;

impl LineCheck for ProxyShellRequests {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PS-1", "EXH-PNS-1", "EXH-PNS-2"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec![
            "autodiscover".into(),
            r"/owa/[^ ]*(?:powershell|%[57]0owershell|%25[57]0owershell)".into(),
        ]
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["cs-uri-stem", "sc-status"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let stem = rec.get("cs-uri-stem").unwrap_or("");
        let query = rec.get("cs-uri-query").unwrap_or("");
        let url = normalised_url(stem, query);
        let method = rec.get("cs-method").unwrap_or("");
        let code = status(rec.get("sc-status"));
        let user = rec
            .get("cs-username")
            .filter(|u| !u.is_empty() && *u != "-");
        let ua = rec
            .get("cs(User-Agent)")
            .unwrap_or("")
            .replace('+', " ")
            .to_lowercase();
        let served = code.is_some_and(|c| (200..400).contains(&c));
        let code_s = code.map_or("no status".to_string(), |c| format!("status {c}"));
        let mut ent = request_entities(rec, kind);
        ent.url = Some(url.clone());

        if url.contains("autodiscover.json") || url.contains("autodiscover/autodiscover") {
            let ssrf_shape = url.contains("email=autodiscover/autodiscover.json")
                || url.contains("autodiscover.json?@")
                || url.contains(".json?a@")
                || url.contains("json?@");
            let to_powershell = url.contains("powershell") || url.contains("x-rps-cat");
            let backend = to_powershell
                || url.contains("/mapi/nspi")
                || url.contains("/mapi/emsmdb")
                || url.contains("/ews/")
                || url.contains("/owa/");
            if !(ssrf_shape || to_powershell) {
                return; // an ordinary autodiscover.json lookup (Email=user@domain&Protocol=…)
            }
            let probe = PROBE_DOMAINS.iter().any(|d| url.contains(d)) && !url.contains("x-rps-cat");
            let (rule, what) = if user.is_some() && to_powershell {
                (
                    "EXH-PNS-1",
                    "CVE-2022-41040 authenticated autodiscover.json SSRF to the PowerShell back end (ProxyNotShell)",
                )
            } else {
                (
                    "EXH-PS-1",
                    "CVE-2021-34473 autodiscover.json SSRF (ProxyShell)",
                )
            };
            let (stage, severity, confidence, tail) = if probe {
                (
                    Stage::Scan,
                    Severity::Info,
                    Confidence::High,
                    "vulnerability scanner probe (test domain), not exploitation",
                )
            } else {
                grade(
                    served && backend,
                    "answered: the request reached the back end",
                )
            };
            out.emit(
                kind,
                rec,
                Hit {
                    rule_id: rule,
                    stage,
                    severity,
                    confidence,
                    title: format!("{what}: {method} to {} ({code_s}; {tail})", target_of(&url)),
                    entities: ent,
                },
            );
            return;
        }

        // OWASSRF: the SSRF through OWA to the PowerShell back end.
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

/// Stage, severity, confidence and wording of an SSRF request: success when it was answered.
fn grade(success: bool, answered: &'static str) -> (Stage, Severity, Confidence, &'static str) {
    if success {
        (
            Stage::ExploitSuccess,
            Severity::Critical,
            Confidence::High,
            answered,
        )
    } else {
        (
            Stage::ExploitAttempt,
            Severity::High,
            Confidence::Medium,
            "refused or failed",
        )
    }
}

/// The back-end target of an SSRF URL, short: what follows the `@domain`, or the path.
fn target_of(url: &str) -> String {
    let t = match url.find('@') {
        Some(i) => &url[i..],
        None => url,
    };
    let mut s: String = t.chars().take(120).collect();
    if t.chars().count() > 120 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_undoes_the_mitigation_bypasses() {
        assert_eq!(
            normalised_url(
                "/AutoDiscover/AutoDiscover.JSON",
                "@x.com/%50owershell/?&Email=autodiscover/autodiscover.json%253F@x.com"
            ),
            "/autodiscover/autodiscover.json?@x.com/powershell/?&email=autodiscover/autodiscover.json?@x.com"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41"), "A");
    }
}
