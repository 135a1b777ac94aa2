//! Organisation scopes (CIDRs, AS numbers, domain names) and the assignment of an observation
//! to the organisation whose scope matches it most specifically.
//!
//! Order of evidence: the longest IP prefix over all CIDR scopes (IPv4 and IPv6), then the
//! longest domain suffix of the host name, then the AS number. Two organisations tied at the
//! best match are not guessed between: the observation goes to the unassigned queue with that
//! reason, for an operator to resolve.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The scope of an organisation as the API shows and takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Networks, `192.0.2.0/24` or `2001:db8::/32` (a bare address is a /32 or /128).
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// AS numbers (`64500`; `AS64500` is accepted on input).
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Domain names; a host matches its domain and every sub-domain.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// One scope entry as stored (`org_scopes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeEntry {
    /// `cidr`, `asn` or `domain`.
    pub kind: &'static str,
    /// Normalised value (`192.0.2.0/24`, `64500`, `example.org`).
    pub value: String,
    /// 4 or 6 for a CIDR.
    pub family: Option<i64>,
    /// Prefix length for a CIDR.
    pub prefix_len: Option<i64>,
    /// First address of the network, fixed-width hex, for a CIDR.
    pub net_hex: Option<String>,
}

/// Parses a network; the host bits must be zero (a typo like `192.0.2.7/24` is refused, not
/// silently widened).
pub fn parse_cidr(s: &str) -> Result<IpNet> {
    let t = s.trim();
    let net: IpNet = match t.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match t.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err(Error::BadRequest(format!("{t:?} is not a CIDR network"))),
        },
    };
    if net.trunc() != net {
        return Err(Error::BadRequest(format!(
            "{t:?} has host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Normalises a domain name: lower case, no trailing dot, at least two labels of letters,
/// digits and hyphens.
pub fn parse_domain(s: &str) -> Result<String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = d.contains('.')
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(Error::BadRequest(format!("{s:?} is not a domain name")))
    }
}

/// The network's first address as fixed-width hex (8 digits for IPv4, 32 for IPv6).
pub fn net_hex(net: &IpNet) -> String {
    match net.network() {
        IpAddr::V4(a) => format!("{:08x}", u32::from(a)),
        IpAddr::V6(a) => format!("{:032x}", u128::from(a)),
    }
}

impl Scope {
    /// Validates and normalises every entry.
    pub fn entries(&self) -> Result<Vec<ScopeEntry>> {
        let mut out = Vec::new();
        for c in &self.cidrs {
            let net = parse_cidr(c)?;
            out.push(ScopeEntry {
                kind: "cidr",
                value: net.to_string(),
                family: Some(if net.addr().is_ipv4() { 4 } else { 6 }),
                prefix_len: Some(i64::from(net.prefix_len())),
                net_hex: Some(net_hex(&net)),
            });
        }
        for a in &self.asns {
            out.push(ScopeEntry {
                kind: "asn",
                value: a.to_string(),
                family: None,
                prefix_len: None,
                net_hex: None,
            });
        }
        for d in &self.domains {
            out.push(ScopeEntry {
                kind: "domain",
                value: parse_domain(d)?,
                family: None,
                prefix_len: None,
                net_hex: None,
            });
        }
        out.sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
        out.dedup();
        Ok(out)
    }
}

/// What an observation says about where it is.
#[derive(Debug, Clone, Default)]
pub struct Locator<'a> {
    /// Address.
    pub ip: Option<IpAddr>,
    /// Host name.
    pub host: Option<&'a str>,
    /// AS number (third-party reports carry it).
    pub asn: Option<u32>,
}

/// The outcome of matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The organisation, and what matched (`cidr 192.0.2.0/24`).
    Org(i64, String),
    /// No organisation, with the reason.
    Unassigned(String),
}

/// All scopes of all organisations, indexed for longest-prefix lookups.
#[derive(Debug, Default)]
pub struct Matcher {
    v4: BTreeMap<u8, HashMap<u32, Vec<i64>>>,
    v6: BTreeMap<u8, HashMap<u128, Vec<i64>>>,
    domains: HashMap<String, Vec<i64>>,
    asns: HashMap<u32, Vec<i64>>,
}

impl Matcher {
    /// Adds one stored scope row (`kind`, `value`) of an organisation; rows that do not parse
    /// are ignored (they were validated when stored).
    pub fn add(&mut self, org: i64, kind: &str, value: &str) {
        match kind {
            "cidr" => match parse_cidr(value) {
                Ok(IpNet::V4(n)) => self
                    .v4
                    .entry(n.prefix_len())
                    .or_default()
                    .entry(u32::from(n.network()))
                    .or_default()
                    .push(org),
                Ok(IpNet::V6(n)) => self
                    .v6
                    .entry(n.prefix_len())
                    .or_default()
                    .entry(u128::from(n.network()))
                    .or_default()
                    .push(org),
                Err(_) => {}
            },
            "domain" => self.domains.entry(value.to_string()).or_default().push(org),
            "asn" => {
                if let Ok(a) = value.parse() {
                    self.asns.entry(a).or_default().push(org)
                }
            }
            _ => {}
        }
    }

    fn pick(orgs: &[i64], what: String) -> Assignment {
        let mut o = orgs.to_vec();
        o.sort_unstable();
        o.dedup();
        match o.as_slice() {
            [one] => Assignment::Org(*one, what),
            many => Assignment::Unassigned(format!(
                "{what} is in the scope of {} organisations ({}): resolve by hand",
                many.len(),
                many.iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Assigns an observation.
    pub fn assign(&self, loc: &Locator<'_>) -> Assignment {
        match loc.ip {
            Some(IpAddr::V4(a)) => {
                let a = u32::from(a);
                for (&len, nets) in self.v4.iter().rev() {
                    let mask = if len == 0 {
                        0
                    } else {
                        u32::MAX << (32 - u32::from(len))
                    };
                    if let Some(orgs) = nets.get(&(a & mask)) {
                        let net = std::net::Ipv4Addr::from(a & mask);
                        return Self::pick(orgs, format!("cidr {net}/{len}"));
                    }
                }
            }
            Some(IpAddr::V6(a)) => {
                let a = u128::from(a);
                for (&len, nets) in self.v6.iter().rev() {
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(len))
                    };
                    if let Some(orgs) = nets.get(&(a & mask)) {
                        let net = std::net::Ipv6Addr::from(a & mask);
                        return Self::pick(orgs, format!("cidr {net}/{len}"));
                    }
                }
            }
            None => {}
        }
        if let Some(host) = loc.host {
            let h = host.trim_end_matches('.').to_ascii_lowercase();
            let mut rest = h.as_str();
            loop {
                if let Some(orgs) = self.domains.get(rest) {
                    return Self::pick(orgs, format!("domain {rest}"));
                }
                match rest.split_once('.') {
                    Some((_, tail)) if tail.contains('.') => rest = tail,
                    _ => break,
                }
            }
        }
        if let Some(asn) = loc.asn
            && let Some(orgs) = self.asns.get(&asn)
        {
            return Self::pick(orgs, format!("AS{asn}"));
        }
        let mut said = Vec::new();
        if let Some(ip) = loc.ip {
            said.push(format!("address {ip}"));
        }
        if let Some(h) = loc.host {
            said.push(format!("host {h}"));
        }
        if let Some(a) = loc.asn {
            said.push(format!("AS{a}"));
        }
        if said.is_empty() {
            Assignment::Unassigned("no address, host name or AS number to match".into())
        } else {
            Assignment::Unassigned(format!("{} in no organisation's scope", said.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matcher {
        let mut m = Matcher::default();
        m.add(1, "cidr", "192.0.2.0/24");
        m.add(2, "cidr", "192.0.2.128/25");
        m.add(3, "cidr", "2001:db8::/32");
        m.add(4, "cidr", "2001:db8:1::/48");
        m.add(1, "domain", "example.org");
        m.add(2, "domain", "mail.example.org");
        m.add(5, "asn", "64500");
        m.add(6, "cidr", "198.51.100.0/24");
        m.add(7, "cidr", "198.51.100.0/24");
        m
    }

    fn ip(s: &str) -> Locator<'static> {
        Locator {
            ip: s.parse().ok(),
            ..Default::default()
        }
    }

    #[test]
    fn longest_prefix_wins_on_both_families() {
        let m = m();
        assert!(matches!(m.assign(&ip("192.0.2.7")), Assignment::Org(1, _)));
        assert!(matches!(
            m.assign(&ip("192.0.2.200")),
            Assignment::Org(2, _)
        ));
        assert!(matches!(
            m.assign(&ip("2001:db8:2::1")),
            Assignment::Org(3, _)
        ));
        assert!(matches!(
            m.assign(&ip("2001:db8:1::25")),
            Assignment::Org(4, _)
        ));
        assert!(matches!(
            m.assign(&ip("203.0.113.1")),
            Assignment::Unassigned(_)
        ));
    }

    #[test]
    fn ties_are_not_guessed() {
        let Assignment::Unassigned(why) = m().assign(&ip("198.51.100.9")) else {
            panic!("a tie must not be assigned");
        };
        assert!(why.contains("#6, #7"), "{why}");
    }

    #[test]
    fn domain_then_asn() {
        let m = m();
        let l = |h: &'static str, asn| Locator {
            ip: None,
            host: Some(h),
            asn,
        };
        assert!(matches!(
            m.assign(&l("EX01.Example.ORG.", None)),
            Assignment::Org(1, _)
        ));
        assert!(matches!(
            m.assign(&l("owa.mail.example.org", None)),
            Assignment::Org(2, _)
        ));
        // Not a suffix on a label boundary.
        assert!(matches!(
            m.assign(&l("badexample.org", None)),
            Assignment::Unassigned(_)
        ));
        assert!(matches!(
            m.assign(&l("x.invalid", Some(64500))),
            Assignment::Org(5, _)
        ));
    }

    #[test]
    fn scope_validation() {
        assert!(parse_cidr("192.0.2.7/24").is_err());
        assert!(parse_cidr("banana").is_err());
        assert_eq!(
            parse_cidr("192.0.2.7").map(|n| n.to_string()).ok(),
            Some("192.0.2.7/32".into())
        );
        assert!(parse_domain("localhost").is_err());
        assert!(parse_domain("a b.org").is_err());
        let s = Scope {
            cidrs: vec!["2001:DB8::/32".into()],
            asns: vec![64500],
            domains: vec!["Example.org.".into()],
        };
        let e = s.entries().unwrap_or_default();
        assert_eq!(e.len(), 3);
        assert!(e.iter().any(|x| x.value == "2001:db8::/32"
            && x.net_hex.as_deref() == Some("20010db8000000000000000000000000")));
        assert!(e.iter().any(|x| x.value == "example.org"));
    }
}
