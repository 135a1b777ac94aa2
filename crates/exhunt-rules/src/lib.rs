//! Built-in rule packs: check metadata, IOC lists and the fixed-build table, embedded at build
//! time from the repository's `rules/` folder so that a single binary carries them.
//!
//! Why data and not code: rules are reviewed like code but read like a catalogue; every entry has
//! its source next to it. Loading is checked by tests at build time of the test suite, so a bad
//! edit to `rules/` fails CI instead of a scan.

#![deny(missing_docs)]

use std::collections::HashMap;

use exhunt_model::RuleMeta;
use serde::Deserialize;

const CHECKS_TOML: &str = include_str!("../../../rules/checks.toml");
const HAFNIUM_IPS: &str = include_str!("../../../rules/ioc/hafnium-ips.csv");
const HAFNIUM_UAS: &str = include_str!("../../../rules/ioc/hafnium-user-agents.csv");
const WEBSHELL_HASHES: &str = include_str!("../../../rules/ioc/webshell-hashes.csv");
const WEBSHELL_PATHS: &str = include_str!("../../../rules/ioc/webshell-paths.csv");
const CLEAN_LISTS: [(&str, &str); 4] = [
    (
        "rules/clean/owa-auth.txt",
        include_str!("../../../rules/clean/owa-auth.txt"),
    ),
    (
        "rules/clean/ecp-auth.txt",
        include_str!("../../../rules/clean/ecp-auth.txt"),
    ),
    (
        "rules/clean/aspnet-client.txt",
        include_str!("../../../rules/clean/aspnet-client.txt"),
    ),
    (
        "rules/clean/wwwroot.txt",
        include_str!("../../../rules/clean/wwwroot.txt"),
    ),
];

pub mod builds;
pub mod checkers;
pub mod feeds;
pub mod sigma;
#[cfg(feature = "yara")]
pub mod yara;

/// Errors loading rule data.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The checks catalogue does not parse.
    #[error("rules/checks.toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A CSV pack does not parse.
    #[error("{file}: {source}")]
    Csv {
        /// File name.
        file: &'static str,
        /// Cause.
        source: csv::Error,
    },
    /// A row of a table does not parse.
    #[error("{file}: bad row {row:?}")]
    BadRow {
        /// File name.
        file: &'static str,
        /// The offending value.
        row: String,
    },
    /// A rule id appears twice.
    #[error("rules/checks.toml: duplicate rule id {0}")]
    Duplicate(String),
}

#[derive(Deserialize)]
struct ChecksFile {
    rule: Vec<RuleMeta>,
}

/// An IOC entry with its source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ioc {
    /// The indicator (IP address, user agent…).
    pub indicator: String,
    /// A class, where the pack has one (`tool`, `crawler-spoof`).
    #[serde(default)]
    pub class: String,
    /// What it was seen doing.
    pub context: String,
    /// Where it was published.
    pub source: String,
    /// The campaign the list was published for (IP and user-agent lists).
    #[serde(default)]
    pub campaign: Option<exhunt_model::Campaign>,
    /// When the list was published (`YYYY-MM-DD`), where known.
    #[serde(default)]
    pub published: String,
}

/// All built-in rule data.
#[derive(Debug, Clone)]
pub struct RulePack {
    rules: Vec<RuleMeta>,
    by_id: HashMap<String, usize>,
    /// HAFNIUM IP addresses.
    pub hafnium_ips: Vec<Ioc>,
    /// HAFNIUM user agents.
    pub hafnium_user_agents: Vec<Ioc>,
    /// The Exchange build table (CU base builds and security updates).
    pub builds: builds::BuildTable,
    /// Published web-shell paths (MSTIC).
    pub webshell_paths: Vec<Ioc>,
    /// Known vulnerability checkers (`rules/checkers.toml`).
    pub checkers: Vec<checkers::Checker>,
    /// File hashes (built-in and user feeds), by lower-case hex.
    hashes: HashMap<String, Ioc>,
}

pub(crate) fn csv_rows<T: for<'de> Deserialize<'de>>(
    file: &'static str,
    text: &str,
) -> Result<Vec<T>, RulesError> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|source| RulesError::Csv { file, source })
}

impl RulePack {
    /// Loads the embedded built-in packs.
    pub fn builtin() -> Result<RulePack, RulesError> {
        let checks: ChecksFile = toml::from_str(CHECKS_TOML)?;
        let mut by_id = HashMap::new();
        for (i, r) in checks.rule.iter().enumerate() {
            if by_id.insert(r.id.clone(), i).is_some() {
                return Err(RulesError::Duplicate(r.id.clone()));
            }
        }
        Ok(RulePack {
            rules: checks.rule,
            by_id,
            hafnium_ips: csv_rows("rules/ioc/hafnium-ips.csv", HAFNIUM_IPS)?,
            hafnium_user_agents: csv_rows("rules/ioc/hafnium-user-agents.csv", HAFNIUM_UAS)?,
            builds: builds::BuildTable::builtin()?,
            webshell_paths: csv_rows("rules/ioc/webshell-paths.csv", WEBSHELL_PATHS)?,
            checkers: checkers::parse()?,
            hashes: csv_rows::<Ioc>("rules/ioc/webshell-hashes.csv", WEBSHELL_HASHES)?
                .into_iter()
                .map(|i| (i.indicator.to_ascii_lowercase(), i))
                .collect(),
        })
    }

    /// The clean-install name lists: (source file, text).
    pub fn clean_lists(&self) -> &'static [(&'static str, &'static str)] {
        &CLEAN_LISTS
    }

    /// The IOC entry of a file hash (SHA-256, SHA-1 or MD5 hex, any case).
    pub fn hash_ioc(&self, hash: &str) -> Option<&Ioc> {
        self.hashes.get(&hash.to_ascii_lowercase())
    }

    /// Number of hash IOCs loaded.
    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }

    /// Which hash kinds the loaded IOCs use: (SHA-256, SHA-1, MD5). A scan computes only those.
    pub fn hash_kinds(&self) -> (bool, bool, bool) {
        let has = |n: usize| self.hashes.keys().any(|k| k.len() == n);
        (has(64), has(40), has(32))
    }

    /// Adds hash IOCs from a user feed (`--ioc`); entries that are not hashes are ignored by
    /// the caller's feed parser and reported there.
    pub fn add_hashes(&mut self, iocs: impl IntoIterator<Item = Ioc>) {
        for i in iocs {
            self.hashes
                .entry(i.indicator.to_ascii_lowercase())
                .or_insert(i);
        }
    }

    /// All rules.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.rules
    }

    /// A rule by id.
    pub fn rule(&self, id: &str) -> Option<&RuleMeta> {
        self.by_id.get(id).map(|&i| &self.rules[i])
    }

    /// Whether `build` (e.g. `15.01.2176.002` or `15.1.2176.9`) has the ProxyLogon fix.
    /// `None` when the build's CU is not in the table.
    pub fn proxylogon_fixed(&self, build: &str) -> Option<bool> {
        self.fixed_for(exhunt_model::Campaign::ProxyLogon, build)
    }

    /// Whether `build` has the fix of `campaign`'s CVEs (ProxyShell: all three, May21SU);
    /// `None` when the build table cannot tell (a product it does not cover, a three-part build
    /// on a CU that received the update) or for a campaign without a fix (post-exploitation).
    pub fn fixed_for(&self, campaign: exhunt_model::Campaign, build: &str) -> Option<bool> {
        use exhunt_model::Campaign;
        let update = match campaign {
            Campaign::ProxyLogon => builds::Update::Mar21SU,
            Campaign::ProxyShell => builds::Update::May21SU,
            Campaign::ProxyNotShell => builds::Update::Nov22SU,
            Campaign::PostExploitation => return None,
        };
        match self
            .builds
            .check(&builds::Version::parse(build)?, update)
            .state
        {
            builds::Patch::Patched => Some(true),
            builds::Patch::Vulnerable => Some(false),
            builds::Patch::Indeterminate => None,
        }
    }
}

/// Parses a 4-part build number, zero-padded or not.
pub fn parse_build(s: &str) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut parts = s.trim().split('.');
    for slot in &mut out {
        *slot = parts.next()?.trim().parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_packs_load_with_sources() {
        let p = RulePack::builtin().unwrap();
        assert!(p.rules().len() >= 10);
        assert_eq!(p.hafnium_ips.len(), 13);
        assert!(
            p.hafnium_ips
                .iter()
                .all(|i| !i.source.is_empty() && i.indicator.parse::<std::net::IpAddr>().is_ok())
        );
        assert_eq!(p.hafnium_user_agents.len(), 14);
        assert_eq!(p.hash_count(), 14);
        assert_eq!(p.webshell_paths.len(), 47);
        assert!(
            p.hash_ioc("8E90ED33C7EE82C0B64078EA36EC95F7420BA435C693B3B3DD728B494ABF7DFC")
                .is_some()
        );
        assert!(
            p.rule("EXH-PL-1")
                .unwrap()
                .cves
                .contains(&"CVE-2021-26855".to_string())
        );
        for r in p.rules() {
            assert!(r.id.starts_with("EXH-"), "{}", r.id);
            assert!(
                !r.spec.is_empty() && !r.references.is_empty(),
                "{} lacks spec/references",
                r.id
            );
        }
    }

    #[test]
    fn fixed_build_table_answers_per_cu() {
        let p = RulePack::builtin().unwrap();
        assert_eq!(p.proxylogon_fixed("15.01.2176.002"), Some(false)); // 2016 CU19 RTM
        assert_eq!(p.proxylogon_fixed("15.1.2176.9"), Some(true)); // CU19 Mar21SU
        assert_eq!(p.proxylogon_fixed("15.01.2176.014"), Some(true)); // May21SU
        assert_eq!(p.proxylogon_fixed("15.2.858.5"), Some(true)); // 2019 CU9 includes the fix
        assert_eq!(p.proxylogon_fixed("15.2.721.2"), Some(false)); // 2019 CU7
        assert_eq!(p.proxylogon_fixed("15.2.1544.9"), Some(true)); // newer than the table
        assert_eq!(p.proxylogon_fixed("15.1.225.42"), Some(false)); // 2016 RTM: no SU, vulnerable
        assert_eq!(p.proxylogon_fixed("14.3.123.4"), None); // Exchange 2010: not in the table
        assert_eq!(p.proxylogon_fixed("garbage"), None);
    }
}
