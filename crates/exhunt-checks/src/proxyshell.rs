//! ProxyShell (2021): the `autodiscover.json` SSRF in IIS and HttpProxy logs, which
//! ProxyNotShell (2022) reuses with a mailbox login (`crate::proxynotshell` has the rest of
//! ProxyNotShell: OWASSRF and the remote PowerShell sessions), and the URL decoding both need.
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
//! in `cs-username` is ProxyNotShell, without one ProxyShell. Requests of the known checkers
//! (`rules/checkers.toml`: nuclei, Nessus, Beaumont's nmap script, CERT.at, exhunt probe, with
//! their test domains such as `@test.com` and `a@foo.var`) are scans, not attacks, and count for
//! the campaign the checker tests: the nuclei ProxyNotShell check is anonymous and answered 302,
//! which alone would read as a ProxyShell success.

use exhunt_model::{ArtefactKind, Confidence, Severity, Stage};
use exhunt_sources::Record;

use crate::check::{Emitter, Hit, LineCheck, request_entities, status};

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

/// A regular expression (ASCII case-insensitive use) for every raw form of the byte `c` that
/// [`normalised_url`] turns into `c`: the byte itself (or its other ASCII case), or a `%XX`
/// escape of either case whose `%` and hex digits may themselves be escaped (`%2540`, `%%34%30`),
/// since the URL is decoded twice.
pub fn raw_forms(c: u8) -> String {
    let digit = |d: u8| {
        let mut alts = vec![regex::escape(&(d as char).to_string())];
        for v in [d.to_ascii_lowercase(), d.to_ascii_uppercase()] {
            let e = format!("%{v:02x}");
            if !alts.contains(&e) {
                alts.push(e);
            }
        }
        format!("(?:{})", alts.join("|"))
    };
    let mut codes = vec![c];
    if c.is_ascii_alphabetic() {
        codes = vec![c.to_ascii_lowercase(), c.to_ascii_uppercase()];
    }
    let mut alts = vec![regex::escape(&(c as char).to_string())];
    for code in codes {
        let hex = format!("{code:02x}");
        let h = hex.as_bytes();
        alts.push(format!("(?:%|%25){}{}", digit(h[0]), digit(h[1])));
    }
    format!("(?:{})", alts.join("|"))
}

/// The raw forms of a string, byte after byte (see [`raw_forms`]).
pub fn raw_seq(s: &str) -> String {
    s.bytes().map(raw_forms).collect()
}

/// The raw forms of the markers one of which the normalised URL of an emitted autodiscover
/// request carries (see [`ProxyShellRequests`]'s prefilter).
fn raw_markers() -> String {
    let a_at = format!("(?:{})?{}", raw_forms(b'a'), raw_forms(b'@'));
    [
        raw_seq("?@"),
        raw_seq("?a@"),
        format!("(?m:^){a_at}"),
        format!("[ ,\"]{a_at}"),
        raw_seq("powershell"),
        raw_seq("x-rps-cat"),
    ]
    .join("|")
}

/// The request fields of a web log: IIS names, or the HttpProxy (Autodiscover, PowerShell…)
/// names of the same things.
pub(crate) struct WebFields<'a> {
    pub(crate) stem: &'a str,
    pub(crate) query: &'a str,
    pub(crate) method: &'a str,
    pub(crate) status: &'a str,
    pub(crate) user: &'a str,
    pub(crate) agent: &'a str,
}

/// The fields a check of [`WebFields`] cannot run without: the URL and the status.
pub(crate) fn web_needs(kind: ArtefactKind) -> &'static [&'static str] {
    if kind == ArtefactKind::IisLog {
        &["cs-uri-stem", "sc-status"]
    } else {
        &["UrlStem", "HttpStatus"]
    }
}

pub(crate) fn web_fields<'a>(kind: ArtefactKind, rec: &'a Record<'_>) -> WebFields<'a> {
    let g = |n: &str| rec.get(n).unwrap_or("");
    if kind == ArtefactKind::IisLog {
        WebFields {
            stem: g("cs-uri-stem"),
            query: g("cs-uri-query"),
            method: g("cs-method"),
            status: g("sc-status"),
            user: g("cs-username"),
            agent: g("cs(User-Agent)"),
        }
    } else {
        WebFields {
            stem: g("UrlStem"),
            query: g("UrlQuery").trim_start_matches('?'),
            method: g("Method"),
            status: g("HttpStatus"),
            user: g("AuthenticatedUser"),
            agent: g("UserAgent"),
        }
    }
}

/// The `autodiscover.json` SSRF in IIS and HttpProxy logs: ProxyShell's (pre-authentication) and
/// ProxyNotShell's (with a mailbox login) are one request shape told apart by the login, so one
/// check emits both. The same request in both logs is one story step (same rule, same stage).
pub struct ProxyShellRequests;

impl LineCheck for ProxyShellRequests {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-PS-1", "EXH-PNS-1"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog, ArtefactKind::HttpProxyLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        // Why these patterns are implied by `check` (issue 15: on a real front end every line of
        // the Autodiscover log says `autodiscover`, so that word alone filtered nothing).
        //
        // The autodiscover branch emits only if the normalised URL `D` (stem `?` query,
        // percent-decoded twice, lower-cased) contains `autodiscover.json` or
        // `autodiscover/autodiscover`, and `ssrf_shape || to_powershell`. Every ssrf_shape string
        // contains `?@` or `?a@` or is `email=autodiscover/autodiscover.json`; to_powershell is
        // `powershell` or `x-rps-cat`. So `D` contains one of the markers `?@`, `?a@`,
        // `email=autodiscover`, `powershell`, `x-rps-cat`. A character of `D` comes from the raw
        // line as itself (any ASCII case: the patterns are case-insensitive, and no non-ASCII
        // character lower-cases to an ASCII letter of these markers), or percent-encoded once or
        // twice: [`raw_forms`] lists every such form, so [`raw_markers`] matches the raw bytes of
        // any marker. A marker cannot straddle the `?` joining stem and query, except `?@` and
        // `?a@` whose `?` may be that join: then the query field starts with `@` or `a@` (raw
        // forms), after a field separator (space, comma, quote) or at the line start. The
        // previous prefilter, the word `autodiscover` anywhere on the line, was part of the
        // condition; it is kept in conjunction (either order on the line) for markers that
        // benign lines carry elsewhere (`powershell` in the PowerShell log, `@` in user names).
        let m = raw_markers();
        vec![format!(
            "autodiscover.*(?:{m})|(?:{m}).*autodiscover|{}|{}",
            raw_seq("email=autodiscover"),
            raw_seq("x-rps-cat")
        )]
    }
    fn needs(&self, kind: ArtefactKind) -> &[&'static str] {
        web_needs(kind)
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let w = web_fields(kind, rec);
        let (stem, method) = (w.stem, w.method);
        let url = normalised_url(stem, w.query);
        let code = status(Some(w.status));
        let user = Some(w.user).filter(|u| !u.is_empty() && *u != "-");
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
            // A checker never sends the X-Rps-CAT token of a real PowerShell session.
            let checker = exhunt_rules::checkers::find(&exhunt_rules::checkers::Request {
                stem: Some(stem),
                url: Some(&url),
                ..Default::default()
            })
            .filter(|_| !url.contains("x-rps-cat"));
            if let Some(c) = checker {
                let (rule, cve) = match c.campaign {
                    exhunt_model::Campaign::ProxyNotShell => ("EXH-PNS-1", "CVE-2022-41040"),
                    _ => ("EXH-PS-1", "CVE-2021-34473"),
                };
                out.emit(
                    kind,
                    rec,
                    Hit {
                        rule_id: rule,
                        stage: Stage::Scan,
                        severity: Severity::Info,
                        confidence: Confidence::High,
                        title: format!(
                            "{cve} vulnerability check by a known checker ({}): {method} to {} ({code_s}); a scan, not exploitation",
                            c.name,
                            target_of(&url)
                        ),
                        entities: ent,
                    },
                );
                return;
            }
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
            let (stage, severity, confidence, tail) = grade(
                served && backend,
                "answered: the request reached the back end",
            );
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
        }
    }
}

/// Stage, severity, confidence and wording of an SSRF request: success when it was answered.
pub(crate) fn grade(
    success: bool,
    answered: &'static str,
) -> (Stage, Severity, Confidence, &'static str) {
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
pub(crate) fn target_of(url: &str) -> String {
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

    /// Every way of writing a byte that decodes (twice) and lower-cases to it.
    fn encodings(c: u8) -> Vec<String> {
        let mut codes = vec![c];
        if c.is_ascii_alphabetic() {
            codes = vec![c.to_ascii_lowercase(), c.to_ascii_uppercase()];
        }
        let mut out = vec![(c as char).to_string()];
        for code in codes {
            out.push((code as char).to_string());
            for hex in [format!("{code:02x}"), format!("{code:02X}")] {
                let h: Vec<char> = hex.chars().collect();
                for pct in ["%", "%25"] {
                    for d0 in [h[0].to_string(), format!("%{:02x}", h[0] as u8)] {
                        for d1 in [h[1].to_string(), format!("%{:02X}", h[1] as u8)] {
                            out.push(format!("{pct}{d0}{d1}"));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn raw_forms_match_every_double_encoding() {
        for &c in b"?@a=/-powershellxrcatemiudiscv" {
            let re = regex::bytes::RegexBuilder::new(&format!("^(?:{})$", raw_forms(c)))
                .case_insensitive(true)
                .unicode(false)
                .build()
                .unwrap();
            for e in encodings(c) {
                let d = percent_decode(&percent_decode(&e)).to_lowercase();
                assert_eq!(d, (c as char).to_ascii_lowercase().to_string(), "{e}");
                assert!(re.is_match(e.as_bytes()), "{e} is a form of {}", c as char);
            }
        }
    }

    fn prefilter_matches(line: &str) -> bool {
        let pats = ProxyShellRequests.prefilter(ArtefactKind::IisLog);
        let re = regex::bytes::RegexBuilder::new(&pats.join("|"))
            .case_insensitive(true)
            .unicode(false)
            .build()
            .unwrap();
        re.is_match(line.as_bytes())
    }

    #[test]
    fn the_narrow_prefilter_keeps_attacks_and_drops_ordinary_autodiscover() {
        // IIS rows: the stem and query are adjacent fields.
        for attack in [
            "2022-09-29 01:02:03 10.0.0.1 POST /autodiscover/autodiscover.json @evil.com/owa/&Email=autodiscover/autodiscover.json%3F@evil.com 443 - 1.2.3.4 python - 302 0 0 1",
            "2022-09-29 01:02:03 10.0.0.1 POST /autodiscover/autodiscover.json %40evil.com/owa/ 443 - 1.2.3.4 python - 302 0 0 1",
            "2022-09-29 01:02:03 10.0.0.1 POST /autodiscover/autodiscover.json a%2540evil.com/%2550owershell 443 - 1.2.3.4 python - 302 0 0 1",
            "2022-09-29 01:02:03 10.0.0.1 POST /Autodiscover/Autodiscover.JSON x=1&%2558-Rps-CAT=abc 443 - 1.2.3.4 python - 302 0 0 1",
            // HttpProxy: the query is a field of its own, with its leading `?`.
            "2022-09-29T01:02:03.000Z,abc,Autodiscover,/autodiscover/autodiscover.json,x,y,?@evil.com/mapi/nspi,z",
            "2022-09-29T01:02:03.000Z,abc,Autodiscover,/autodiscover/autodiscover.json,x,y,@evil.com/mapi/nspi,z",
        ] {
            assert!(prefilter_matches(attack), "{attack}");
        }
        for benign in [
            "2021-03-03 01:02:03 10.0.0.1 POST /Autodiscover/Autodiscover.xml - 443 CONTOSO\\alice 10.1.1.1 Microsoft+Office/16.0 - 200 0 0 1",
            "2021-03-03 01:02:03 10.0.0.1 GET /autodiscover/autodiscover.json/v1.0/alice@contoso.com Protocol=ActiveSync 443 - 10.1.1.1 Outlook-iOS - 200 0 0 1",
            "2021-03-03 01:02:03 10.0.0.1 GET /autodiscover/autodiscover.json Email=alice%40contoso.com&Protocol=ActiveSync 443 alice@contoso.com 10.1.1.1 Outlook-iOS - 200 0 0 1",
            "2021-03-03T01:02:03.000Z,abc,Autodiscover,/Autodiscover/Autodiscover.xml,Smtp~alice@contoso.com,?,z",
        ] {
            assert!(!prefilter_matches(benign), "{benign}");
        }
    }
}
