//! Known vulnerability checkers (`rules/checkers.toml`): the requests that Microsoft's nmap
//! script, the nuclei templates, Nessus, the CERT scanners and `exhunt probe` send, with the test
//! domains, mailbox names and callback hosts they use.
//!
//! Why a list of its own: these requests have the shape of the exploits (an `autodiscover.json`
//! SSRF answered 302, an `X-AnonResource` cookie), and servers saw them by the thousand from
//! administrators and researchers. Graded by the exploit checks alone they made scanned servers
//! look breached (issue 13). Each entry cites where its request is published, so that an
//! analyst can tell why a request was called a scan.

use std::sync::OnceLock;

use exhunt_model::Campaign;
use serde::Deserialize;

use crate::RulesError;

const CHECKERS_TOML: &str = include_str!("../../../rules/checkers.toml");

/// One known checker and what identifies its request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Checker {
    /// Display name.
    pub name: String,
    /// The campaign whose vulnerability it checks.
    pub campaign: Campaign,
    /// Where its request is published.
    pub source: String,
    /// The URL path, exact (case-insensitive).
    #[serde(default)]
    pub stem: Option<String>,
    /// Hosts of the SSRF target: equal, or a sub-domain of one.
    #[serde(default)]
    pub ssrf_hosts: Vec<String>,
    /// Start of the SSRF target's path.
    #[serde(default)]
    pub ssrf_path: Option<String>,
    /// Substrings of the decoded, lower-cased URL, all present.
    #[serde(default)]
    pub url: Vec<String>,
}

/// What a log line says about a request, as the checkers are matched against it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// URL path as logged.
    pub stem: Option<&'a str>,
    /// Path and query, percent-decoded twice and lower-cased.
    pub url: Option<&'a str>,
    /// Host of the SSRF target (lower case, without user part and port).
    pub ssrf_host: Option<&'a str>,
    /// Path of the SSRF target (after the host's slash).
    pub ssrf_path: Option<&'a str>,
}

#[derive(Deserialize)]
struct CheckersFile {
    checker: Vec<Checker>,
}

impl Checker {
    /// Whether the request is this checker's.
    pub fn matches(&self, r: &Request<'_>) -> bool {
        if let Some(stem) = &self.stem
            && !r.stem.is_some_and(|s| s.eq_ignore_ascii_case(stem))
        {
            return false;
        }
        if !self.ssrf_hosts.is_empty() {
            let Some(h) = r.ssrf_host else { return false };
            let h = h.to_ascii_lowercase();
            if !self
                .ssrf_hosts
                .iter()
                .any(|d| h == *d || h.ends_with(&format!(".{d}")))
            {
                return false;
            }
        }
        if let Some(p) = &self.ssrf_path {
            let Some(tp) = r.ssrf_path else { return false };
            if !(tp.len() >= p.len() && tp.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
            {
                return false;
            }
        }
        if !self.url.is_empty() {
            let Some(u) = r.url else { return false };
            if !self.url.iter().all(|s| u.contains(s.as_str())) {
                return false;
            }
        }
        true
    }
}

/// Parses the embedded list; every entry must say how its request is recognised.
pub fn parse() -> Result<Vec<Checker>, RulesError> {
    let file: CheckersFile = toml::from_str(CHECKERS_TOML).map_err(|e| RulesError::BadRow {
        file: "rules/checkers.toml",
        row: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(file.checker.len());
    for mut c in file.checker {
        if c.stem.is_none() && c.ssrf_hosts.is_empty() && c.ssrf_path.is_none() && c.url.is_empty()
        {
            return Err(RulesError::BadRow {
                file: "rules/checkers.toml",
                row: c.name,
            });
        }
        if c.source.trim().is_empty() {
            return Err(RulesError::BadRow {
                file: "rules/checkers.toml",
                row: format!("{}: no source", c.name),
            });
        }
        for s in c.ssrf_hosts.iter_mut().chain(c.url.iter_mut()) {
            *s = s.to_lowercase();
        }
        out.push(c);
    }
    Ok(out)
}

/// The built-in checkers, parsed once. [`crate::RulePack::builtin`] parses the same list and
/// fails on an error, so an engine never runs with a broken list; here a broken list is empty.
pub fn builtin() -> &'static [Checker] {
    static LIST: OnceLock<Vec<Checker>> = OnceLock::new();
    LIST.get_or_init(|| parse().unwrap_or_default())
}

/// The first built-in checker whose request this is.
pub fn find(r: &Request<'_>) -> Option<&'static Checker> {
    builtin().iter().find(|c| c.matches(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses_and_every_entry_has_a_source() {
        let list = parse().unwrap();
        assert!(list.len() >= 10);
        assert!(list.iter().all(|c| !c.source.is_empty()));
        for c in [
            Campaign::ProxyLogon,
            Campaign::ProxyShell,
            Campaign::ProxyNotShell,
        ] {
            assert!(list.iter().any(|x| x.campaign == c), "{c:?}");
        }
    }

    #[test]
    fn checker_requests_are_recognised_and_exploits_are_not() {
        let url = "/autodiscover/autodiscover.json?a..foo.var/owa/&email=autodiscover/autodiscover.json?a..foo.var&protocol=xyz&fooprotocol=powershell";
        let c = find(&Request {
            url: Some(url),
            ..Request::default()
        })
        .unwrap();
        assert_eq!(c.campaign, Campaign::ProxyNotShell);
        let nmap = find(&Request {
            stem: Some("/owa/auth/x.js"),
            ssrf_host: Some("localhost"),
            ssrf_path: Some("ecp/default.flt?"),
            ..Request::default()
        })
        .unwrap();
        assert!(nmap.name.contains("nmap"));
        assert!(
            find(&Request {
                stem: Some("/ecp/y.js"),
                ssrf_host: Some("ex01.contoso.local"),
                ssrf_path: Some("ecp/proxyLogon.ecp?#"),
                ..Request::default()
            })
            .is_none()
        );
        assert!(
            find(&Request {
                url: Some("/autodiscover/autodiscover.json?@evil.com/powershell/?&email=autodiscover/autodiscover.json?@evil.com"),
                ..Request::default()
            })
            .is_none()
        );
        assert!(
            find(&Request {
                ssrf_host: Some("notoast.fun"),
                ..Request::default()
            })
            .is_none()
        );
    }
}
