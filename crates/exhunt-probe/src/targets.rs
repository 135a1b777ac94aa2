//! Targets: parsing what the user typed, and expanding it as a stream.
//!
//! A target specification is a host name, an IP address, a CIDR block, an IPv4 range
//! (`10.0.0.1-10.0.0.50` or `10.0.0.1-50`) or a URL (`https://mail.example.org:8443/`), each
//! optionally with `:port`. Specifications come from the command line, from `@file` (one per
//! line, `#` comments) and from `-` (standard input). Expansion never materialises a block: a
//! /8 is an iterator over sixteen million numbers, so memory stays flat whatever the scope.
//!
//! Sizes are known before anything is sent, so a scope larger than the limit is refused up
//! front unless the user says `--allow-large`, and a typo such as `10.0.0.0/8` for
//! `10.0.0.0/28` never starts a run.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::error::ProbeError;

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// TLS.
    Https,
    /// Plain HTTP.
    Http,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        })
    }
}

/// One host and port to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP literal (used for SNI when a name, and for the `Host` header).
    pub host: String,
    /// The address when the target is an IP literal; names are resolved when probed.
    pub ip: Option<IpAddr>,
    /// Port.
    pub port: u16,
    /// Scheme.
    pub scheme: Scheme,
}

impl Target {
    /// The `Host` header: the name or address (IPv6 in brackets), with the port when it is not
    /// the scheme's default (RFC 9110 §7.2).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The identity of a target in outputs, `--resume` and `--shard`: `host:port`, IPv6 in
    /// brackets, names lower-cased.
    pub fn key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Addrs {
    Name(String),
    V4(u32, u32),
    V6(u128, u128),
}

/// A parsed target specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    addrs: Addrs,
    port: Option<u16>,
    scheme: Option<Scheme>,
}

/// Upper bound of targets even with `--allow-large` (an IPv6 /64 is not a scope).
pub const HARD_LIMIT: u128 = 1 << 32;

impl Spec {
    /// Parses one specification.
    pub fn parse(text: &str) -> Result<Spec, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty target".into());
        }
        if t.len() > 300 {
            return Err("target longer than 300 characters".into());
        }
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(t, "https://") {
            (Some(Scheme::Https), r)
        } else if let Some(r) = strip_prefix_ci(t, "http://") {
            (Some(Scheme::Http), r)
        } else if t.contains("://") {
            return Err("only http:// and https:// URLs are targets".into());
        } else {
            (None, t)
        };
        // A URL's path is ignored; without a scheme a '/' is a CIDR prefix.
        let rest = match scheme {
            Some(_) => rest.split(['/', '?', '#']).next().unwrap_or_default(),
            None => rest,
        };
        let (host, port) = split_port(rest)?;
        let addrs = parse_addrs(host)?;
        if scheme.is_some() && !matches!(addrs, Addrs::Name(_)) && size_of(&addrs) != 1 {
            return Err("a URL names one host, not a block".into());
        }
        Ok(Spec {
            addrs,
            port,
            scheme,
        })
    }

    /// Number of addresses (before ports).
    pub fn size(&self) -> u128 {
        size_of(&self.addrs)
    }

    /// Whether this is a host name.
    pub fn is_name(&self) -> bool {
        matches!(self.addrs, Addrs::Name(_))
    }

    /// The targets, streamed: every address times every port (the spec's own port wins).
    pub fn targets<'a>(&'a self, ports: &'a [u16]) -> impl Iterator<Item = Target> + 'a {
        let own = self.port.map(|p| vec![p]);
        let ports: Vec<u16> = own.unwrap_or_else(|| ports.to_vec());
        let scheme = self.scheme;
        self.hosts().flat_map(move |(host, ip)| {
            ports.clone().into_iter().map(move |port| Target {
                host: host.clone(),
                ip,
                port,
                scheme: scheme.unwrap_or(if port == 80 {
                    Scheme::Http
                } else {
                    Scheme::Https
                }),
            })
        })
    }

    fn hosts(&self) -> Box<dyn Iterator<Item = (String, Option<IpAddr>)> + '_> {
        match &self.addrs {
            Addrs::Name(n) => Box::new(std::iter::once((n.clone(), None))),
            Addrs::V4(a, b) => Box::new((*a..=*b).map(|n| {
                let ip = Ipv4Addr::from(n);
                (ip.to_string(), Some(IpAddr::V4(ip)))
            })),
            Addrs::V6(a, b) => Box::new((*a..=*b).map(|n| {
                let ip = Ipv6Addr::from(n);
                (ip.to_string(), Some(IpAddr::V6(ip)))
            })),
        }
    }
}

fn size_of(a: &Addrs) -> u128 {
    match a {
        Addrs::Name(_) => 1,
        Addrs::V4(x, y) => u128::from(y - x) + 1,
        Addrs::V6(x, y) => (y - x).saturating_add(1),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    // `get`, not indexing: the prefix length may fall inside a multi-byte character.
    s.get(..p.len())
        .filter(|head| head.eq_ignore_ascii_case(p))
        .and_then(|_| s.get(p.len()..))
}

fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("bad port {p:?}")),
            Ok(n) => Ok(n),
        }
    };
    if let Some(r) = s.strip_prefix('[') {
        let (host, after) = r.split_once(']').ok_or("unclosed '[' in IPv6 target")?;
        return match after {
            "" => Ok((host, None)),
            a => match a.strip_prefix(':') {
                Some(p) => Ok((host, Some(port(p)?))),
                None => Err(format!("unexpected {a:?} after ']'")),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            Ok((h, Some(port(p)?)))
        }
        // Bare IPv6 (with or without a prefix length): no port.
        _ => Ok((s, None)),
    }
}

fn parse_addrs(host: &str) -> Result<Addrs, String> {
    if host.is_empty() {
        return Err("no host".into());
    }
    if let Some((net, len)) = host.split_once('/') {
        let len: u32 = len
            .parse()
            .map_err(|_| format!("bad prefix length {len:?}"))?;
        return match net.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let lo = u32::from(a) & mask;
                Ok(Addrs::V4(lo, lo | !mask))
            }
            Ok(IpAddr::V6(a)) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let lo = u128::from(a) & mask;
                Ok(Addrs::V6(lo, lo | !mask))
            }
            Ok(_) => Err(format!("prefix length {len} too long")),
            Err(_) => Err(format!("{net:?} is not an IP network")),
        };
    }
    let range = host
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<Ipv4Addr>().ok()?, b)));
    if let Some((start, b)) = range {
        let end = if let Ok(e) = b.parse::<Ipv4Addr>() {
            e
        } else {
            let last: u8 = b.parse().map_err(|_| format!("bad range end {b:?}"))?;
            let o = start.octets();
            Ipv4Addr::new(o[0], o[1], o[2], last)
        };
        let (s, e) = (u32::from(start), u32::from(end));
        if e < s {
            return Err(format!("range {host} ends before it starts"));
        }
        return Ok(Addrs::V4(s, e));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(a) => Addrs::V4(u32::from(a), u32::from(a)),
            IpAddr::V6(a) => Addrs::V6(u128::from(a), u128::from(a)),
        });
    }
    valid_name(host)?;
    Ok(Addrs::Name(host.trim_end_matches('.').to_ascii_lowercase()))
}

fn valid_name(h: &str) -> Result<(), String> {
    let h = h.trim_end_matches('.');
    if h.len() > 253 {
        return Err("host name longer than 253 characters".into());
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{h:?} is not a valid IP address"));
    }
    for label in h.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{h:?} is not a valid host name"));
        }
    }
    Ok(())
}

/// A set of addresses and names: the exclude list and the scope. Ranges are merged and
/// searched by bisection, so a long exclude list costs little per target.
#[derive(Debug, Clone, Default)]
pub struct AddrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    names: HashSet<String>,
}

impl AddrSet {
    /// Adds a specification; ports and schemes are ignored.
    pub fn add(&mut self, spec: &Spec) {
        match &spec.addrs {
            Addrs::Name(n) => {
                self.names.insert(n.clone());
            }
            Addrs::V4(a, b) => self.v4.push((*a, *b)),
            Addrs::V6(a, b) => self.v6.push((*a, *b)),
        }
    }

    /// Sorts and merges the ranges; call once after adding.
    pub fn seal(&mut self) {
        fn merge<T: Ord + Copy + From<u8> + std::ops::Add<Output = T>>(
            v: &mut Vec<(T, T)>,
            max: T,
        ) {
            v.sort_unstable();
            let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
            for &(a, b) in v.iter() {
                match out.last_mut() {
                    Some(last) if last.1 == max || a <= last.1 + T::from(1) => {
                        last.1 = last.1.max(b);
                    }
                    _ => out.push((a, b)),
                }
            }
            *v = out;
        }
        merge(&mut self.v4, u32::MAX);
        merge(&mut self.v6, u128::MAX);
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.names.is_empty()
    }

    /// Whether an address is in the set.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        fn find<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
            let i = v.partition_point(|&(a, _)| a <= x);
            i > 0 && v[i - 1].1 >= x
        }
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    /// Whether a host name is in the set (case-insensitive).
    pub fn contains_name(&self, name: &str) -> bool {
        self.names
            .contains(name.trim_end_matches('.').to_ascii_lowercase().as_str())
    }

    /// Whether a target is in the set by its literal address or its name.
    pub fn contains_target(&self, t: &Target) -> bool {
        match t.ip {
            Some(ip) => self.contains_ip(ip),
            None => self.contains_name(&t.host),
        }
    }
}

/// Where specifications come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// One specification typed on the command line.
    Literal(String),
    /// `@file`: one specification per line.
    File(PathBuf),
    /// `-`: standard input, read once and kept (specifications, not expanded addresses).
    Lines(Vec<String>),
}

impl Input {
    /// Classifies a command-line argument; reads standard input for `-`.
    pub fn from_arg(arg: &str) -> std::io::Result<Input> {
        if arg == "-" {
            let lines = std::io::stdin()
                .lock()
                .lines()
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Input::Lines(lines));
        }
        Ok(match arg.strip_prefix('@') {
            Some(p) => Input::File(PathBuf::from(p)),
            None => Input::Literal(arg.to_string()),
        })
    }
}

/// One item of a specification list: a parsed specification or a malformed line.
#[derive(Debug, Clone)]
pub enum Item {
    /// A good specification.
    Spec(Spec),
    /// A line that is not a target, with the reason.
    Bad {
        /// The text as given.
        text: String,
        /// Why it is not a target.
        reason: String,
    },
}

/// Calls `f` for every specification of every input, in order. Files are read line by line,
/// so this can be called twice (once to count, once to probe) without holding a file.
pub fn for_each_spec(inputs: &[Input], mut f: impl FnMut(Item) -> bool) -> Result<(), ProbeError> {
    let mut line = |text: &str| -> bool {
        let t = text.trim();
        if t.is_empty() || t.starts_with('#') {
            return true;
        }
        // Allow trailing comments and comma or space separated lists on a line.
        let t = t.split('#').next().unwrap_or_default();
        for part in t.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
            let item = match Spec::parse(part) {
                Ok(s) => Item::Spec(s),
                Err(reason) => Item::Bad {
                    text: part.to_string(),
                    reason,
                },
            };
            if !f(item) {
                return false;
            }
        }
        true
    };
    for input in inputs {
        match input {
            Input::Literal(s) => {
                if !line(s) {
                    return Ok(());
                }
            }
            Input::Lines(ls) => {
                for l in ls {
                    if !line(l) {
                        return Ok(());
                    }
                }
            }
            Input::File(p) => {
                let read_error = |source| ProbeError::ReadList {
                    what: "target list",
                    path: p.clone(),
                    source,
                };
                let file = std::fs::File::open(p).map_err(read_error)?;
                let mut r = BufReader::new(file);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) => break,
                        Ok(_) => {
                            if !line(&String::from_utf8_lossy(&buf)) {
                                return Ok(());
                            }
                        }
                        Err(e) => return Err(read_error(e)),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads an exclude or scope list (files and literals) into a set. Bad lines are errors here:
/// a scope that does not parse must stop the run, not widen it.
pub fn addr_set(inputs: &[Input]) -> Result<AddrSet, ProbeError> {
    let mut set = AddrSet::default();
    let mut bad = None;
    for_each_spec(inputs, |item| match item {
        Item::Spec(s) => {
            set.add(&s);
            true
        }
        Item::Bad { text, reason } => {
            bad = Some(ProbeError::BadEntry { text, reason });
            false
        }
    })?;
    if let Some(b) = bad {
        return Err(b);
    }
    set.seal();
    Ok(set)
}

/// A deterministic shard: `i` of `n` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=n.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses `i/n`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard {s:?}: expected i/n, e.g. 2/4"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("shard {s:?}: bad i"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("shard {s:?}: bad n"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {s:?}: need 1 <= i <= n"));
        }
        Ok(Shard { index, count })
    }

    /// Whether a target key belongs to this shard. FNV-1a of the key: stable across machines,
    /// versions and input order, so shards computed on different hosts never overlap.
    pub fn owns(&self, key: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(spec: &str, ports: &[u16]) -> Vec<String> {
        Spec::parse(spec)
            .unwrap()
            .targets(ports)
            .map(|t| t.key())
            .collect()
    }

    #[test]
    fn specification_forms() {
        assert_eq!(keys("10.0.0.1", &[443]), ["10.0.0.1:443"]);
        assert_eq!(keys("Mail.Example.ORG.", &[443]), ["mail.example.org:443"]);
        assert_eq!(
            keys("mail.example.org:8443", &[443, 444]),
            ["mail.example.org:8443"]
        );
        assert_eq!(keys("10.0.0.5/30", &[443]).len(), 4);
        assert_eq!(keys("10.0.0.5/30", &[443])[0], "10.0.0.4:443");
        assert_eq!(keys("10.0.0.250-10.0.1.2", &[443]).len(), 9);
        assert_eq!(keys("10.0.0.1-3", &[443, 8443]).len(), 6);
        assert_eq!(keys("[2001:db8::1]:8443", &[443]), ["[2001:db8::1]:8443"]);
        assert_eq!(keys("2001:db8::/126", &[443]).len(), 4);
        let t: Vec<Target> = Spec::parse("http://mail.example.org/owa/")
            .unwrap()
            .targets(&[443])
            .collect();
        assert_eq!((t[0].scheme, t[0].port), (Scheme::Http, 443));
        let t: Vec<Target> = Spec::parse("10.0.0.1:80").unwrap().targets(&[]).collect();
        assert_eq!(t[0].scheme, Scheme::Http);
        assert_eq!(Spec::parse("10.0.0.0/8").unwrap().size(), 1 << 24);
        assert_eq!(Spec::parse("::/0").unwrap().size(), u128::MAX);
    }

    #[test]
    fn host_headers() {
        let t = |s: &str| {
            Spec::parse(s)
                .unwrap()
                .targets(&[443])
                .next()
                .unwrap()
                .host_header()
        };
        assert_eq!(t("mail.example.org"), "mail.example.org");
        assert_eq!(t("mail.example.org:8443"), "mail.example.org:8443");
        assert_eq!(t("http://10.0.0.1"), "10.0.0.1:443");
        assert_eq!(t("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(t("[2001:db8::1]"), "[2001:db8::1]");
        assert_eq!(t("[2001:db8::1]:8443"), "[2001:db8::1]:8443");
    }

    #[test]
    fn malformed_specifications_say_why() {
        for bad in [
            "",
            "10.0.0.1:0",
            "10.0.0.1:99999",
            "10.0.0.300",
            "10.0.0.0/33",
            "10.0.0.9-10.0.0.1",
            "bad_-.example..org",
            "ftp://host",
            "[::1",
            "-leading.example.org",
            "10.0.0.1/abc",
        ] {
            let e = Spec::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
        assert!(Spec::parse(&"a".repeat(400)).unwrap_err().contains("300"));
        // Found by fuzzing: a scheme check slicing inside a multi-byte character.
        assert!(Spec::parse("..\u{FFFD}\u{FFFD}").is_err());
        assert!(Spec::parse("htt\u{e9}://x").is_err());
    }

    #[test]
    fn sets_merge_and_bisect() {
        let mut s = AddrSet::default();
        for x in [
            "10.0.0.0/24",
            "10.0.1.0/24",
            "192.168.1.7",
            "mail.example.org",
            "2001:db8::/32",
        ] {
            s.add(&Spec::parse(x).unwrap());
        }
        s.seal();
        assert_eq!(s.v4.len(), 2, "adjacent blocks merge: {:?}", s.v4);
        assert!(s.contains_ip("10.0.1.255".parse().unwrap()));
        assert!(!s.contains_ip("10.0.2.0".parse().unwrap()));
        assert!(s.contains_ip("192.168.1.7".parse().unwrap()));
        assert!(s.contains_ip("::ffff:10.0.0.3".parse().unwrap()));
        assert!(s.contains_ip("2001:db8:1::5".parse().unwrap()));
        assert!(s.contains_name("MAIL.example.org."));
        assert!(!s.contains_name("example.org"));
    }

    #[test]
    fn shards_are_disjoint_and_cover() {
        let all = keys("10.1.0.0/20", &[443, 8443]);
        let shards: Vec<Shard> = (1..=3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut seen = HashSet::new();
        for k in &all {
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(k)).collect();
            assert_eq!(owners.len(), 1, "{k}");
            seen.insert(k.clone());
        }
        assert_eq!(seen.len(), all.len());
        for s in &shards {
            let n = all.iter().filter(|k| s.owns(k)).count();
            assert!(n > all.len() / 4, "balanced: {n} of {}", all.len());
        }
        for bad in ["0/3", "4/3", "1/0", "x", "1-3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_stream_with_comments_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(
            &p,
            "# owned ranges\n10.0.0.1, 10.0.0.2\n\nnot a..host # typo\r\n10.0.0.0/31\n",
        )
        .unwrap();
        let mut good = 0u128;
        let mut bad = vec![];
        for_each_spec(&[Input::File(p)], |i| {
            match i {
                Item::Spec(s) => good += s.size(),
                Item::Bad { text, .. } => bad.push(text),
            }
            true
        })
        .unwrap();
        // "not" is a one-label host name; "a..host" is not a name.
        assert_eq!(good, 5);
        assert_eq!(bad, ["a..host"]);
        let e = for_each_spec(&[Input::File("/nonexistent/t.txt".into())], |_| true).unwrap_err();
        assert!(
            matches!(&e, ProbeError::ReadList { path, .. } if path.ends_with("t.txt")),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("cannot read target list "), "{e}");
    }
}
