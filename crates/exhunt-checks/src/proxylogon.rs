//! ProxyLogon / HAFNIUM log checks (research spec §3.1–§3.5): the SSRF in HttpProxy and IIS logs,
//! the OAB generator file write, the ECP virtual-directory change and reset.
//!
//! Each check rejects a candidate on its raw line before asking for fields, so lines that only
//! share a literal with an attack cost a substring test.

use exhunt_model::{ArtefactKind, Confidence, Entities, Severity, Stage};
use exhunt_sources::Record;

use crate::check::request_entities;
use crate::check::{
    Emitter, Hit, LineCheck, contains_ci, find_ci, lit, nonempty, served, starts_with_ci, status,
};

/// How an SSRF target is classified (C-26855-A/B/C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsrfClass {
    /// A vulnerability checker (localhost or out-of-band target, `x.js` probe).
    Scan,
    /// An exploitation attempt (autodiscover-only target, or the request was refused).
    Attempt,
    /// The request was proxied to a back-end path of the attacker's choosing and served.
    Success,
}

/// Splits the part after `ServerInfo~` / `Server~` into host and path.
fn split_target(t: &str) -> Option<(&str, &str)> {
    let slash = t.find('/')?;
    Some((&t[..slash], &t[slash + 1..]))
}

/// The host name inside an SSRF target such as `a]@ex01.contoso.com:444`.
fn target_host(host: &str) -> String {
    let h = host.rsplit('@').next().unwrap_or(host);
    let h = h.split(':').next().unwrap_or(h);
    h.trim_matches(|c: char| c == '[' || c == ']')
        .to_ascii_lowercase()
}

/// The known checker (`rules/checkers.toml`) whose request an SSRF target is: Microsoft's nmap
/// script (localhost), nuclei (an interactsh callback host), the x.js/default.flt shape.
pub fn ssrf_checker(
    host: &str,
    path: &str,
    url_stem: &str,
) -> Option<&'static exhunt_rules::checkers::Checker> {
    let h = target_host(host);
    // Any loopback address is the nmap check's, as Test-ProxyLogon treats it (PR #306).
    let h = if h.starts_with("127.") {
        "127.0.0.1".to_string()
    } else {
        h
    };
    exhunt_rules::checkers::find(&exhunt_rules::checkers::Request {
        stem: Some(url_stem),
        url: None,
        ssrf_host: Some(&h),
        ssrf_path: Some(path),
    })
}

/// Classifies an SSRF target.
pub fn classify_ssrf(host: &str, path: &str, url_stem: &str, status: Option<u16>) -> SsrfClass {
    if ssrf_checker(host, path, url_stem).is_some() {
        return SsrfClass::Scan;
    }
    if starts_with_ci(path, "autodiscover") {
        return SsrfClass::Attempt;
    }
    if served(status) {
        SsrfClass::Success
    } else {
        SsrfClass::Attempt
    }
}

/// EXH-PL-1, -3, -7 (C-26855-A/C, C-27065-B): the `ServerInfo~` anchor in HttpProxy logs.
pub struct ServerInfoAnchor;

impl LineCheck for ServerInfoAnchor {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PL-1", "EXH-PL-3", "EXH-PL-7"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::HttpProxyLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec![lit("ServerInfo~")]
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["AnchorMailbox", "HttpStatus", "UrlStem"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        if !contains_ci(rec.raw, "ServerInfo~") {
            return;
        }
        let Some(anchor) = rec.get("AnchorMailbox") else {
            return;
        };
        if !starts_with_ci(anchor, "ServerInfo~") {
            return;
        }
        let Some((host, path)) = split_target(&anchor["ServerInfo~".len()..]) else {
            return;
        };
        let stem = rec.get("UrlStem").unwrap_or("");
        let code = status(rec.get("HttpStatus"));
        let mut ent = request_entities(rec, kind);
        ent.target = Some(anchor["ServerInfo~".len()..].to_string());
        let class = classify_ssrf(host, path, stem, code);
        let code_s = code.map_or("no status".to_string(), |c| format!("status {c}"));
        let path_short: String = path
            .split(['?', '#'])
            .next()
            .unwrap_or(path)
            .chars()
            .take(80)
            .collect();
        let hit = match class {
            SsrfClass::Scan => Hit {
                rule_id: "EXH-PL-3",
                stage: Stage::Scan,
                severity: Severity::Info,
                confidence: Confidence::High,
                title: format!(
                    "ProxyLogon vulnerability check (SSRF target {}, {code_s}): {}",
                    target_host(host),
                    ssrf_checker(host, path, stem).map_or("known checker", |c| c.name.as_str())
                ),
                entities: ent.clone(),
            },
            SsrfClass::Attempt => Hit {
                rule_id: "EXH-PL-1",
                stage: Stage::ExploitAttempt,
                severity: Severity::High,
                confidence: Confidence::High,
                title: format!("CVE-2021-26855 SSRF attempt to /{path_short} ({code_s})"),
                entities: ent.clone(),
            },
            SsrfClass::Success => Hit {
                rule_id: "EXH-PL-1",
                stage: Stage::ExploitSuccess,
                severity: Severity::Critical,
                confidence: Confidence::High,
                title: format!("CVE-2021-26855 SSRF reached back-end /{path_short} ({code_s})"),
                entities: ent.clone(),
            },
        };
        out.emit(kind, rec, hit);
        if class != SsrfClass::Scan
            && contains_ci(path, "Reset")
            && contains_ci(path, "VirtualDirectory")
            && code == Some(200)
        {
            out.emit(
                kind,
                rec,
                Hit {
                    rule_id: "EXH-PL-7",
                    stage: Stage::Persistence,
                    severity: Severity::Critical,
                    confidence: Confidence::High,
                    title: "CVE-2021-27065 virtual directory reset through the SSRF (file written)"
                        .into(),
                    entities: ent,
                },
            );
        }
    }
}

/// EXH-PL-2 (C-26855-B): `BackEndCookie` of the form `Server~<host>/<path>~<n>`.
pub struct BackEndCookie;

impl LineCheck for BackEndCookie {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PL-2", "EXH-PL-3"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::HttpProxyLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        // Only cookies with a slash before the next `~`: normal ones name a server.
        vec![r"Server~[^~,/\r\n]*/".into()]
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["BackEndCookie"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        // Raw gate: a slash between `Server~` and the next `~` or comma.
        let raw = rec.raw;
        let mut gate = false;
        let mut from = 0;
        while let Some(i) = find_ci(&raw[from..], "Server~") {
            let start = from + i + "Server~".len();
            let rest = &raw[start..];
            let end = rest.find(['~', ',']).unwrap_or(rest.len());
            if rest[..end].contains('/') {
                gate = true;
                break;
            }
            from = start;
        }
        if !gate {
            return;
        }
        let Some(cookie) = rec.get("BackEndCookie") else {
            return;
        };
        if !starts_with_ci(cookie, "Server~") {
            return;
        }
        let t = &cookie["Server~".len()..];
        let Some((host, rest)) = split_target(t) else {
            return;
        };
        let Some(tilde) = rest.find('~') else { return };
        let path = &rest[..tilde];
        let code = status(rec.get("HttpStatus"));
        let mut ent = request_entities(rec, kind);
        ent.target = Some(format!("{host}/{path}"));
        let class = classify_ssrf(host, path, rec.get("UrlStem").unwrap_or(""), code);
        let (rule_id, stage, severity, what) = match class {
            SsrfClass::Scan => (
                "EXH-PL-3",
                Stage::Scan,
                Severity::Info,
                "ProxyLogon vulnerability check (X-BEResource cookie)",
            ),
            SsrfClass::Attempt => (
                "EXH-PL-2",
                Stage::ExploitAttempt,
                Severity::High,
                "CVE-2021-26855 SSRF attempt via X-BEResource cookie",
            ),
            SsrfClass::Success => (
                "EXH-PL-2",
                Stage::ExploitSuccess,
                Severity::Critical,
                "CVE-2021-26855 SSRF via X-BEResource cookie reached the back end",
            ),
        };
        out.emit(
            kind,
            rec,
            Hit {
                rule_id,
                stage,
                severity,
                confidence: Confidence::High,
                title: format!("{what} (/{path})"),
                entities: ent,
            },
        );
    }
}

/// EXH-PL-4 and scanner probes (C-26855-C/D): front-end IIS request patterns.
pub struct IisRequestPatterns;

const STATIC_TARGETS: &[&str] = &[
    "/ecp/auth/w.js",
    "/owa/auth/w.js",
    "/ecp/main.css",
    "/ecp/default.flt",
    "/owa/auth/x.js",
];

fn short_ecp_js(stem: &str) -> bool {
    let lower = stem.to_ascii_lowercase();
    let Some(name) = lower.strip_prefix("/ecp/") else {
        return false;
    };
    let Some(base) = name.strip_suffix(".js") else {
        return false;
    };
    (1..=3).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl LineCheck for IisRequestPatterns {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PL-4", "EXH-PL-3"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec![
            r"/ecp/(?:[a-z0-9]{1,3}\.js|auth/w\.js|main\.css|default\.flt)".into(),
            r"/owa/auth/(?:[wx]\.js|Current/themes/resources/)".into(),
            lit("CorrelationID=<empty>"),
        ]
    }
    fn needs(&self, _: ArtefactKind) -> &[&'static str] {
        &["cs-method", "cs-uri-stem", "sc-status"]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let raw = rec.raw;
        if !(contains_ci(raw, " POST ")
            || contains_ci(raw, "x.js")
            || contains_ci(raw, "CorrelationID=<empty>"))
        {
            return;
        }
        let method = rec.get("cs-method").unwrap_or("");
        let stem = rec.get("cs-uri-stem").unwrap_or("");
        let query = rec.get("cs-uri-query").unwrap_or("");
        let code = status(rec.get("sc-status"));
        let post = method.eq_ignore_ascii_case("POST");
        let ent = request_entities(rec, kind);
        let code_s = code.map_or("no status".to_string(), |c| format!("status {c}"));
        let pattern = if post && short_ecp_js(stem) {
            Some("POST to a short .js name under /ecp/ (ProxyLogon exploit)")
        } else if post && STATIC_TARGETS.iter().any(|t| stem.eq_ignore_ascii_case(t)) {
            Some("POST to a static ECP/OWA resource (ProxyLogon exploit)")
        } else if post && starts_with_ci(stem, "/owa/auth/Current/themes/resources/") {
            Some("POST to an OWA theme resource (HAFNIUM web-shell access pattern)")
        } else if method.eq_ignore_ascii_case("GET")
            && starts_with_ci(stem, "/rpc/")
            && contains_ci(query, "CorrelationID=<empty>")
            && matches!(code, Some(200 | 301 | 302))
        {
            Some("GET /rpc/ with an empty CorrelationID (CVE-2021-27065 chain trace)")
        } else {
            None
        };
        if let Some(what) = pattern {
            // A 2xx on a POST to a file that does not exist means the front end proxied it.
            let success = (post && matches!(code, Some(200..=299))) || (!post && served(code));
            out.emit(
                kind,
                rec,
                Hit {
                    rule_id: "EXH-PL-4",
                    stage: if success {
                        Stage::ExploitSuccess
                    } else {
                        Stage::ExploitAttempt
                    },
                    severity: if success {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                    confidence: if success {
                        Confidence::Medium
                    } else {
                        Confidence::High
                    },
                    title: format!("{what}: {method} {stem} ({code_s})"),
                    entities: ent,
                },
            );
        } else if !post && stem.eq_ignore_ascii_case("/owa/auth/x.js") {
            out.emit(
                kind,
                rec,
                Hit {
                    rule_id: "EXH-PL-3",
                    stage: Stage::Scan,
                    severity: Severity::Info,
                    confidence: Confidence::Medium,
                    title: format!("ProxyLogon vulnerability check: GET /owa/auth/x.js ({code_s})"),
                    entities: ent,
                },
            );
        }
    }
}

/// Server-side script extensions (Sentinel's list, spec C-26858-A, plus .ashx/.asp).
const SCRIPT_EXT: &[&str] = &[
    ".aspx", ".asmx", ".ashx", ".asax", ".asp", ".php", ".jsp", ".js", ".cfm", ".shtml", ".config",
];

fn is_script_path(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    SCRIPT_EXT.iter().any(|e| l.ends_with(e))
}

/// Whether a Windows path (local or UNC) lies in a folder IIS serves.
pub fn in_web_root(p: &str) -> bool {
    let l = p.to_ascii_lowercase().replace('/', "\\");
    l.contains("\\inetpub\\wwwroot\\")
        || l.contains("\\frontend\\httpproxy\\")
        || l.contains("\\aspnet_client\\")
}

/// EXH-PL-5 (C-26858-A): OAB generator downloads outside `ClientAccess\OAB`.
pub struct OabDownloadPath {
    /// `<EXCH>` given by the user, lower-cased with backslashes.
    pub exchange_path: Option<String>,
}

const OAB_MARK: &str = "Download failed and temporary file ";

impl LineCheck for OabDownloadPath {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PL-5"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::OabGeneratorLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec![lit(OAB_MARK.trim_end())]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let raw = rec.raw;
        let Some(i) = find_ci(raw, OAB_MARK) else {
            return;
        };
        let rest = &raw[i + OAB_MARK.len()..];
        let end = find_ci(rest, " needs to be removed").unwrap_or(rest.len());
        let path = rest[..end].trim().trim_matches(['\'', '"']);
        let norm = path.to_ascii_lowercase().replace('/', "\\");
        let healthy = match &self.exchange_path {
            Some(exch) => norm.starts_with(&format!(
                "{}\\clientaccess\\oab",
                exch.trim_end_matches('\\')
            )),
            None => !norm.starts_with("\\\\") && norm.contains("\\clientaccess\\oab\\"),
        };
        if healthy || path.is_empty() {
            return;
        }
        let script = is_script_path(path);
        let ent = Entities {
            file_path: Some(path.to_string()),
            ..Entities::default()
        };
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-PL-5",
                stage: Stage::Persistence,
                severity: if script {
                    Severity::Critical
                } else {
                    Severity::High
                },
                confidence: if script || in_web_root(path) {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                title: format!("CVE-2021-26858 OAB generator wrote {path}"),
                entities: ent,
            },
        );
    }
}

/// Value of a `Name='value'` parameter in an ECP `S:CMD=` string, for parameter names ending
/// with `suffix` (e.g. `Url` matches ExternalUrl and InternalUrl).
fn ecp_params<'a>(raw: &'a str, suffix: &str) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::new();
    let mut from = 0;
    let pat = format!("{suffix}='");
    while let Some(i) = find_ci(&raw[from..], &pat) {
        let at = from + i;
        // Parameter name: letters before the suffix, back to a '.' or ';' or '='.
        let name_start = raw[..at].rfind(['.', ';', '=', ' ']).map_or(0, |p| p + 1);
        let vstart = at + pat.len();
        let rest = &raw[vstart..];
        // The value ends at a quote followed by `;`, `.`, `,` or the end of the line.
        let b = rest.as_bytes();
        let vend = (0..b.len())
            .find(|&k| {
                b[k] == b'\'' && (k + 1 == b.len() || matches!(b[k + 1], b';' | b'.' | b',' | b'"'))
            })
            .unwrap_or(rest.len());
        out.push((&raw[name_start..at + suffix.len()], &rest[..vend]));
        from = vstart + vend;
    }
    out
}

/// Whether a URL value holds markup or script instead of a URL.
pub fn has_markup(v: &str) -> bool {
    let b = v.as_bytes();
    let tag = b.windows(2).any(|w| {
        w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'%' | b'!' | b'/'))
    });
    tag || [
        "eval(",
        "page_load",
        "runat=",
        "request[",
        "request.item",
        "unsafe",
    ]
    .iter()
    .any(|t| contains_ci(v, t))
}

/// EXH-PL-6 and EXH-PL-8 (C-27065-A/B): ECP server log virtual-directory changes.
pub struct EcpVirtualDirectory;

impl LineCheck for EcpVirtualDirectory {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PL-6", "EXH-PL-8"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::EcpServerLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        vec![lit("VirtualDirectory")]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let raw = rec.raw;
        let server = nonempty(rec.get("ServerName"));
        if let Some(i) = find_ci(raw, "Set-")
            && contains_ci(&raw[i..], "VirtualDirectory")
        {
            let cmd = cmdlet_at(&raw[i..]);
            for (name, value) in ecp_params(raw, "Url")
                .into_iter()
                .filter(|(_, v)| has_markup(v))
            {
                let ent = Entities {
                    target: Some(format!("{name}={value}")),
                    server: server.clone(),
                    ..Entities::default()
                };
                let hit = Hit {
                    rule_id: "EXH-PL-6",
                    stage: Stage::Persistence,
                    severity: Severity::Critical,
                    confidence: Confidence::High,
                    title: format!("CVE-2021-27065 script planted in {cmd} {name}"),
                    entities: ent,
                };
                out.emit(kind, rec, hit);
            }
        }
        if let Some(i) = find_ci(raw, "Reset-")
            && contains_ci(&raw[i..], "VirtualDirectory")
        {
            let cmd = cmdlet_at(&raw[i..]);
            for (_, path) in ecp_params(raw, "FilePathName")
                .into_iter()
                .filter(|(_, p)| is_script_path(p) || in_web_root(p))
            {
                let ent = Entities {
                    file_path: Some(path.to_string()),
                    server: server.clone(),
                    ..Entities::default()
                };
                let hit = Hit {
                    rule_id: "EXH-PL-8",
                    stage: Stage::Persistence,
                    severity: Severity::Critical,
                    confidence: Confidence::High,
                    title: format!("CVE-2021-27065 {cmd} wrote {path}"),
                    entities: ent,
                };
                out.emit(kind, rec, hit);
            }
        }
    }
}

fn cmdlet_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
#[path = "proxylogon/tests.rs"]
mod tests;
