//! IOC checks over web logs: the published HAFNIUM IP addresses and user agents
//! (`rules/ioc/`). Literal prefilters find candidate lines; the field compare decides, so an IP
//! that is a substring of another address never matches.

use exhunt_model::{ArtefactKind, Confidence, Severity, Stage};
use exhunt_rules::Ioc;
use exhunt_sources::Record;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};

use crate::check::request_entities;
use crate::check::{Emitter, Hit, LineCheck, lit, starts_with_ci};

/// EXH-IOC-1: client IP is a published HAFNIUM address.
pub struct HafniumIps {
    ips: Vec<Ioc>,
    gate: AhoCorasick,
}

impl HafniumIps {
    /// From the IOC pack.
    pub fn new(ips: Vec<Ioc>) -> Self {
        let gate =
            AhoCorasick::new(ips.iter().map(|i| i.indicator.as_str())).expect("plain strings");
        HafniumIps { ips, gate }
    }
}

fn client_ip<'r>(kind: ArtefactKind, rec: &'r Record<'_>) -> Option<&'r str> {
    match kind {
        ArtefactKind::IisLog => rec.get("c-ip"),
        _ => rec.get("ClientIpAddress"),
    }
}

/// What the indicator list says about itself: the campaign and date it was published for.
fn published(ioc: &Ioc) -> String {
    match (ioc.campaign, ioc.published.as_str()) {
        (Some(c), "") => format!(" (list published for {})", c.label()),
        (Some(c), d) => format!(" (list published {d} for {})", c.label()),
        (None, "") => String::new(),
        (None, d) => format!(" (list published {d})"),
    }
}

const WEB_KINDS: &[ArtefactKind] = &[ArtefactKind::HttpProxyLog, ArtefactKind::IisLog];

impl LineCheck for HafniumIps {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-IOC-1"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        WEB_KINDS
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        self.ips.iter().map(|i| lit(&i.indicator)).collect()
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        if !self.gate.is_match(rec.raw) {
            return;
        }
        let Some(ip) = client_ip(kind, rec) else {
            return;
        };
        // HttpProxy may log `ip:port` or a list; compare the address part.
        let ip = ip.split([';', ' ']).next().unwrap_or(ip);
        // `a.b.c.d:port` (one colon) is IPv4 with a port; IPv6 has several colons.
        let addr = match ip.split_once(':') {
            Some((a, port)) if !port.contains(':') => a,
            _ => ip,
        };
        let Some(ioc) = self.ips.iter().find(|i| addr == i.indicator) else {
            return;
        };
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-IOC-1",
                stage: Stage::ExploitAttempt,
                severity: Severity::Medium,
                confidence: Confidence::Medium,
                title: format!(
                    "Request from published HAFNIUM exploitation address {}{}",
                    ioc.indicator,
                    published(ioc)
                ),
                entities: request_entities(rec, kind),
            },
        );
    }
}

/// EXH-IOC-2: POST with a published HAFNIUM user agent (tools: any method).
pub struct HafniumUserAgents {
    uas: Vec<(Ioc, String, String)>, // (ioc, normalised full UA, prefilter token)
    gate: AhoCorasick,
}

/// Normalises a user agent: IIS writes spaces as `+`, HttpProxy may turn commas into spaces.
pub fn normalise_ua(ua: &str) -> String {
    let s: String = ua
        .chars()
        .map(|c| {
            if c == '+' || c == ',' || c == ';' {
                ' '
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The most distinctive token of a UA (what the prefilter searches).
fn token(ua: &str) -> String {
    const MARKERS: &[&str] = &[
        "antSword/",
        "ExchangeServicesClient/",
        "python-requests/",
        "DuckDuckBot/",
        "facebookexternalhit/",
        "Baiduspider/",
        "Bingbot/",
        "Googlebot/",
        "Exabot-Thumbnails",
        "Slurp",
        "YandexBot/",
        "Chrome/51.0.2704.103",
    ];
    for m in MARKERS {
        if let Some(i) = ua.find(m) {
            let rest = &ua[i..];
            let end = rest.find(['+', ' ', ';', ')', ',']).unwrap_or(rest.len());
            return rest[..end].to_string();
        }
    }
    ua.to_string()
}

impl HafniumUserAgents {
    /// From the IOC pack.
    pub fn new(uas: Vec<Ioc>) -> Self {
        let uas: Vec<(Ioc, String, String)> = uas
            .into_iter()
            .map(|i| {
                let n = normalise_ua(&i.indicator);
                let t = token(&i.indicator);
                (i, n, t)
            })
            .collect();
        let gate = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(
                uas.iter()
                    .map(|(_, _, t): &(Ioc, String, String)| t.as_str()),
            )
            .expect("plain strings");
        HafniumUserAgents { uas, gate }
    }
}

impl LineCheck for HafniumUserAgents {
    fn rule_ids(&self) -> &[&'static str] {
        &["EXH-IOC-2"]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        WEB_KINDS
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        let mut v: Vec<String> = self.uas.iter().map(|(_, _, t)| lit(t)).collect();
        v.sort();
        v.dedup();
        v
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        if !self.gate.is_match(rec.raw) {
            return;
        }
        let (ua, method, stem) = match kind {
            ArtefactKind::IisLog => (
                rec.get("cs(User-Agent)"),
                rec.get("cs-method"),
                rec.get("cs-uri-stem"),
            ),
            _ => (rec.get("UserAgent"), rec.get("Method"), rec.get("UrlStem")),
        };
        let Some(ua) = ua else { return };
        let n = normalise_ua(ua);
        let Some((ioc, _, _)) = self
            .uas
            .iter()
            .find(|(_, full, _)| n.contains(full.as_str()))
        else {
            return;
        };
        let post = method.is_some_and(|m| m.eq_ignore_ascii_case("POST"));
        let stem = stem.unwrap_or("");
        let exchange_path = [
            "/ecp/",
            "/owa/",
            "/aspnet_client/",
            "/ews/",
            "/mapi/",
            "/oab/",
        ]
        .iter()
        .any(|p| starts_with_ci(stem, p));
        let tool = ioc.class == "tool" && !ioc.indicator.starts_with("python-requests");
        if !(tool || (post && exchange_path)) {
            return;
        }
        let weak = ioc.indicator.starts_with("python-requests/2.25");
        out.emit(
            kind,
            rec,
            Hit {
                rule_id: "EXH-IOC-2",
                stage: Stage::ExploitAttempt,
                severity: Severity::Medium,
                confidence: if weak {
                    Confidence::Low
                } else {
                    Confidence::Medium
                },
                title: format!(
                    "{} {stem} with HAFNIUM user agent `{}`{}",
                    method.unwrap_or("request"),
                    ioc.indicator.replace('+', " "),
                    published(ioc)
                ),
                entities: request_entities(rec, kind),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ua_normalisation_matches_iis_and_httpproxy_forms() {
        let iis =
            "Mozilla/5.0+(compatible;+Baiduspider/2.0;++http://www.baidu.com/search/spider.html)";
        let proxy =
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)";
        assert_eq!(normalise_ua(iis), normalise_ua(proxy));
        assert_eq!(token(iis), "Baiduspider/2.0");
        assert_eq!(token("antSword/v2.1"), "antSword/v2.1");
    }
}
