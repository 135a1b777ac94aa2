//! The Exchange build table and the question "does this build carry security update X?".
//!
//! One table (`rules/builds/exchange-builds.csv`) lists every cumulative update's base build and
//! every security update from March 2021 onward, as Microsoft's HealthChecker table has them
//! (spec §9.2). Both `scan` (was the server patched before the first evidence?) and `probe`
//! (is it exposed now?) answer from it, with Microsoft's algorithm from CSS-Exchange
//! `CompareExchangeBuildLevel.ps1`, written anew here:
//!
//! 1. a build at or past the newest CU's build of update X (same product line) has X — later CUs
//!    ship every earlier fix;
//! 2. otherwise the build's own CU decides: it has X iff it is at or past that CU's X build;
//! 3. a CU that never received X does not have it.
//!
//! A three-part build (the `/owa/auth/15.2.1118/` path of a logon page) names the CU but not the
//! revision: rules 1 and 3 still decide, rule 2 cannot, and the answer is `Indeterminate` with
//! that reason rather than a guess.

use std::fmt;

use serde::Deserialize;

const BUILDS_CSV: &str = include_str!("../../../rules/builds/exchange-builds.csv");

/// The security updates that fix the campaigns exhunt knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Update {
    /// March 2021 (KB5000871): ProxyLogon, CVE-2021-26855/26857/26858/27065.
    Mar21SU,
    /// April 2021 (KB5001779): ProxyShell CVE-2021-34473 and -34523.
    Apr21SU,
    /// May 2021 (KB5003435): ProxyShell CVE-2021-31207.
    May21SU,
    /// July 2021 (KB5004778/9/80): ProxyToken CVE-2021-33766.
    Jul21SU,
    /// November 2022 (KB5019758): ProxyNotShell CVE-2022-41040 and -41082.
    Nov22SU,
}

impl Update {
    /// The name used in Microsoft's build table, e.g. `Mar21SU`.
    pub fn name(self) -> &'static str {
        match self {
            Update::Mar21SU => "Mar21SU",
            Update::Apr21SU => "Apr21SU",
            Update::May21SU => "May21SU",
            Update::Jul21SU => "Jul21SU",
            Update::Nov22SU => "Nov22SU",
        }
    }

    /// The update's knowledge-base article.
    pub fn kb(self) -> &'static str {
        match self {
            Update::Mar21SU => "KB5000871",
            Update::Apr21SU => "KB5001779",
            Update::May21SU => "KB5003435",
            Update::Jul21SU => "KB5004778",
            Update::Nov22SU => "KB5019758",
        }
    }
}

/// An Exchange build number as read from a server: four parts, or three when only the CU is
/// known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    parts: [u32; 4],
    full: bool,
}

impl Version {
    /// Parses `15.2.1118.20`, `15.02.1118.020` or the three-part `15.2.1118`.
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = [0u32; 4];
        let mut n = 0;
        for p in s.trim().split('.') {
            if n == 4 || p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[n] = p.parse().ok()?;
            n += 1;
        }
        (n == 3 || n == 4).then_some(Version {
            parts,
            full: n == 4,
        })
    }

    /// Whether the revision (the SU level) is known.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The four parts (the revision is 0 for a three-part build).
    pub fn parts(&self) -> [u32; 4] {
        self.parts
    }

    fn cu_key(&self) -> [u32; 3] {
        [self.parts[0], self.parts[1], self.parts[2]]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts;
        if self.full {
            write!(f, "{a}.{b}.{c}.{d}")
        } else {
            write!(f, "{a}.{b}.{c}")
        }
    }
}

/// A row of the build table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BuildRow {
    /// Product, e.g. `Exchange 2019`.
    pub product: String,
    /// Cumulative update, e.g. `CU12`.
    pub cu: String,
    /// The build.
    pub build: String,
    /// The security or hotfix update this build is (`Nov22SU`), empty for the CU's base build.
    pub update: String,
    /// Release date when known.
    #[serde(default)]
    pub released: String,
    /// Where the row comes from.
    pub source: String,
}

/// What a build is: product, CU and update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// Product, e.g. `Exchange 2016`.
    pub product: String,
    /// CU, e.g. `CU19`; empty when the CU is not in the table.
    pub cu: String,
    /// The update the build is or is at least (`Mar21SU`); empty for a base build or unknown.
    pub update: String,
    /// Whether the build is exactly a row of the table.
    pub exact: bool,
}

impl fmt::Display for Identified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.product)?;
        if self.cu.is_empty() {
            return f.write_str(" (CU not in the table)");
        }
        write!(f, " {}", self.cu)?;
        match (self.update.as_str(), self.exact) {
            ("", _) => Ok(()),
            (u, true) => write!(f, " {u}"),
            (u, false) => write!(f, " {u} or later"),
        }
    }
}

/// Whether a build has an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Patch {
    /// The build carries the update.
    Patched,
    /// The build does not carry it.
    Vulnerable,
    /// The build cannot tell (three-part build on a CU that received the update, or a product
    /// the table does not cover).
    Indeterminate,
}

/// An answer with the reason a person can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchAnswer {
    /// The answer.
    pub state: Patch,
    /// Why, naming the builds compared.
    pub reason: String,
}

/// The build table with Microsoft's comparison algorithm.
#[derive(Debug, Clone)]
pub struct BuildTable {
    rows: Vec<(BuildRow, [u32; 4])>,
}

impl BuildTable {
    /// The embedded table. Its rows are checked by the test suite; a row that does not parse is
    /// a build-time defect of `rules/`.
    pub fn builtin() -> Result<BuildTable, crate::RulesError> {
        Self::from_csv("rules/builds/exchange-builds.csv", BUILDS_CSV)
    }

    /// Reads a table in the same CSV layout.
    pub fn from_csv(file: &'static str, text: &str) -> Result<BuildTable, crate::RulesError> {
        let rows: Vec<BuildRow> = crate::csv_rows(file, text)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(v) = Version::parse(&row.build).filter(Version::is_full) else {
                return Err(crate::RulesError::BadRow {
                    file,
                    row: row.build.clone(),
                });
            };
            out.push((row, v.parts));
        }
        Ok(BuildTable { rows: out })
    }

    /// All rows.
    pub fn rows(&self) -> impl Iterator<Item = &BuildRow> {
        self.rows.iter().map(|(r, _)| r)
    }

    /// The builds of `cu_key` (a CU's first three parts), base build first.
    fn cu_rows(&self, key: [u32; 3]) -> impl Iterator<Item = &(BuildRow, [u32; 4])> {
        self.rows.iter().filter(move |(_, b)| b[..3] == key)
    }

    /// Names a build: product, CU and the update it is (or is at least).
    pub fn identify(&self, v: &Version) -> Option<Identified> {
        let key = v.cu_key();
        let cu_rows: Vec<&(BuildRow, [u32; 4])> = self.cu_rows(key).collect();
        if let Some((first, _)) = cu_rows.first() {
            let mut id = Identified {
                product: first.product.clone(),
                cu: first.cu.clone(),
                update: String::new(),
                exact: !v.full,
            };
            if v.full {
                if let Some((row, _)) = cu_rows.iter().find(|(_, b)| *b == v.parts) {
                    id.update.clone_from(&row.update);
                    id.exact = true;
                } else if let Some((row, _)) = cu_rows
                    .iter()
                    .filter(|(r, b)| !r.update.is_empty() && *b <= v.parts)
                    .max_by_key(|(_, b)| *b)
                {
                    id.update.clone_from(&row.update);
                }
            }
            return Some(id);
        }
        // A CU the table does not list: name the product from its neighbours.
        let (row, _) = self
            .rows
            .iter()
            .filter(|(_, b)| b[..2] == v.parts[..2])
            .min_by_key(|(_, b)| b[2].abs_diff(v.parts[2]))?;
        Some(Identified {
            product: row.product.clone(),
            cu: String::new(),
            update: String::new(),
            exact: false,
        })
    }

    /// Whether `v` carries `update`, by Microsoft's three rules (module docs).
    pub fn check(&self, v: &Version, update: Update) -> PatchAnswer {
        let name = update.name();
        let line: Vec<&(BuildRow, [u32; 4])> = self
            .rows
            .iter()
            .filter(|(r, b)| r.update == name && b[..2] == v.parts[..2])
            .collect();
        let answer = |state, reason: String| PatchAnswer { state, reason };
        let Some((newest_row, newest)) = line.iter().max_by_key(|(_, b)| *b) else {
            return answer(
                Patch::Indeterminate,
                format!("build {v} is of a product the build table does not cover"),
            );
        };
        let newest_v = fmt_parts(newest);
        // Rule 1: at or past the newest CU's build of the update.
        if v.full && v.parts >= *newest {
            return answer(
                Patch::Patched,
                format!(
                    "build {v} is at or past {newest_v} ({} {} {name})",
                    newest_row.product, newest_row.cu
                ),
            );
        }
        if !v.full && v.parts[..3] > newest[..3] {
            return answer(
                Patch::Patched,
                format!(
                    "CU build {v} is newer than {} {} ({}), which already had {name}",
                    newest_row.product,
                    newest_row.cu,
                    fmt3(newest)
                ),
            );
        }
        // Rule 2: the build's own CU.
        if let Some((row, fixed)) = line.iter().find(|(_, b)| b[..3] == v.parts[..3]) {
            let fixed_v = fmt_parts(fixed);
            if !v.full {
                return answer(
                    Patch::Indeterminate,
                    format!(
                        "only the CU is known ({v}, {} {}); {name} for it is {fixed_v}, which a three-part build cannot prove",
                        row.product, row.cu
                    ),
                );
            }
            return if v.parts >= *fixed {
                answer(
                    Patch::Patched,
                    format!(
                        "build {v} is at or past {fixed_v} ({} {} {name})",
                        row.product, row.cu
                    ),
                )
            } else {
                answer(
                    Patch::Vulnerable,
                    format!(
                        "build {v} is below {fixed_v} ({} {} {name})",
                        row.product, row.cu
                    ),
                )
            };
        }
        // Rule 3: the CU never received the update.
        let cu = self.identify(v).filter(|i| !i.cu.is_empty()).map_or_else(
            || "its CU".to_string(),
            |i| format!("{} {}", i.product, i.cu),
        );
        answer(
            Patch::Vulnerable,
            format!("build {v}: {cu} never received {name}; the fix needs a newer CU"),
        )
    }
}

fn fmt_parts(p: &[u32; 4]) -> String {
    format!("{}.{}.{}.{}", p[0], p[1], p[2], p[3])
}

fn fmt3(p: &[u32; 4]) -> String {
    format!("{}.{}.{}", p[0], p[1], p[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> BuildTable {
        BuildTable::builtin().unwrap()
    }

    fn state(b: &str, u: Update) -> Patch {
        t().check(&Version::parse(b).unwrap(), u).state
    }

    #[test]
    fn versions_parse_padded_and_three_part() {
        let v = Version::parse("15.01.2176.002").unwrap();
        assert_eq!(v.parts(), [15, 1, 2176, 2]);
        assert!(v.is_full());
        assert_eq!(v.to_string(), "15.1.2176.2");
        let v = Version::parse("15.2.1118").unwrap();
        assert!(!v.is_full());
        assert_eq!(v.to_string(), "15.2.1118");
        for bad in [
            "",
            "15",
            "15.2",
            "15..1.2",
            "a.b.c",
            "15.2.1.2.3",
            "15.2.1.99999999999",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_row_of_the_table_is_consistent() {
        let t = t();
        let mut n = 0;
        for row in t.rows() {
            n += 1;
            assert!(!row.source.is_empty(), "{row:?}");
            let v = Version::parse(&row.build).unwrap();
            let id = t.identify(&v).unwrap();
            assert_eq!(
                (id.product.as_str(), id.cu.as_str()),
                (row.product.as_str(), row.cu.as_str())
            );
            assert_eq!(id.update, row.update, "{row:?}");
            // A build that is an update is patched for that update.
            for u in [
                Update::Mar21SU,
                Update::Apr21SU,
                Update::May21SU,
                Update::Jul21SU,
                Update::Nov22SU,
            ] {
                if row.update == u.name() {
                    assert_eq!(t.check(&v, u).state, Patch::Patched, "{row:?}");
                    // and the build just before it in its CU is not.
                    let mut p = v.parts();
                    p[3] -= 1;
                    let prev = Version {
                        parts: p,
                        full: true,
                    };
                    assert_eq!(t.check(&prev, u).state, Patch::Vulnerable, "{prev} {u:?}");
                }
            }
        }
        assert!(n > 150, "{n} rows");
    }

    #[test]
    fn microsoft_rules_per_cu() {
        use Patch::*;
        use Update::*;
        // 2016 CU19: Mar21SU .9, Apr21SU .12, May21SU .14, no Jul21SU, no Nov22SU.
        assert_eq!(state("15.1.2176.2", Mar21SU), Vulnerable);
        assert_eq!(state("15.1.2176.9", Mar21SU), Patched);
        assert_eq!(state("15.1.2176.11", Apr21SU), Vulnerable);
        assert_eq!(state("15.1.2176.12", Apr21SU), Patched);
        assert_eq!(state("15.1.2176.14", May21SU), Patched);
        assert_eq!(state("15.1.2176.14", Jul21SU), Vulnerable);
        assert_eq!(state("15.1.2176.14", Nov22SU), Vulnerable);
        // 2019 CU9 shipped after Mar21SU: its base build is patched by rule 1.
        assert_eq!(state("15.2.858.5", Mar21SU), Patched);
        assert_eq!(state("15.2.858.5", Apr21SU), Vulnerable);
        // Newer than everything in the table.
        assert_eq!(state("15.2.9999.1", Nov22SU), Patched);
        // 2016 RTM: no SU.
        assert_eq!(state("15.1.225.42", Mar21SU), Vulnerable);
        // Exchange 2010 and garbage products.
        assert_eq!(state("14.3.513.0", Mar21SU), Indeterminate);
        assert_eq!(state("8.0.1.1", Mar21SU), Indeterminate);
        // Three-part builds: rules 1 and 3 decide, rule 2 cannot.
        assert_eq!(state("15.2.1118", Mar21SU), Patched);
        assert_eq!(state("15.2.1118", Nov22SU), Indeterminate);
        assert_eq!(state("15.2.721", Mar21SU), Indeterminate);
        assert_eq!(state("15.2.721", Apr21SU), Vulnerable);
        assert_eq!(state("15.1.1591", Nov22SU), Vulnerable);
        let a = t().check(&Version::parse("15.2.1118").unwrap(), Nov22SU);
        assert!(a.reason.contains("three-part"), "{}", a.reason);
        assert!(a.reason.contains("15.2.1118.20"), "{}", a.reason);
    }

    #[test]
    fn identify_names_cu_and_update() {
        let t = t();
        let id = |s: &str| t.identify(&Version::parse(s).unwrap()).unwrap().to_string();
        assert_eq!(id("15.2.1118.20"), "Exchange 2019 CU12 Nov22SU");
        assert_eq!(id("15.2.1118.22"), "Exchange 2019 CU12 Jan23SU or later");
        assert_eq!(id("15.2.1118.7"), "Exchange 2019 CU12");
        assert_eq!(id("15.2.1118"), "Exchange 2019 CU12");
        assert_eq!(id("15.1.2242.4"), "Exchange 2016 CU20");
        assert_eq!(id("15.1.225.42"), "Exchange 2016 (CU not in the table)");
        assert!(t.identify(&Version::parse("9.9.9.9").unwrap()).is_none());
    }

    /// Every build of the table is in righel's dictionary (scraped from Microsoft's build page)
    /// under the same CU and update, except the two March 2021 builds where righel and
    /// Microsoft's own table disagree (probe-and-ecosystem.md A1).
    #[test]
    fn table_agrees_with_the_public_version_dictionary() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/righel_ms-exchange-version-nse/ms-exchange-unique-versions-dict.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} is absent", path.display());
            return;
        };
        let dict: serde_json::Value = serde_json::from_str(&text).unwrap();
        let known_disagreements = ["15.1.1415.8", "15.1.1466.13"];
        let mut checked = 0;
        for row in t().rows() {
            if known_disagreements.contains(&row.build.as_str()) {
                assert!(dict.get(&row.build).is_none());
                continue;
            }
            let name = dict[&row.build]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{} not in righel", row.build));
            assert!(
                name.contains(&row.update),
                "{}: {name} vs {}",
                row.build,
                row.update
            );
            if row.cu != "RTM" {
                assert!(
                    name.contains(&format!("{} ", row.cu)) || name.ends_with(&row.cu),
                    "{}: {name} vs {}",
                    row.build,
                    row.cu
                );
            }
            checked += 1;
        }
        assert!(checked > 150);
    }
}
