//! Names the built-in rule pack and the Exchange build table in `exhunt --version`: a responder
//! who copies the binary onto a server must be able to tell which rules and which fixed builds
//! it judges with. The pack is identified by a hash of every file under `rules/` (FNV-1a, 64 bit:
//! an identity, not a security property) and the count of catalogue rules; the build table by
//! its row count and its newest update.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

/// `Nov22SU` → (2022, 11); `None` for other labels.
fn update_order(label: &str) -> Option<(u32, u32)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| label.starts_with(m))? as u32 + 1;
    let year: u32 = label.get(3..5)?.parse().ok()?;
    Some((2000 + year, month))
}

fn main() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    println!("cargo:rerun-if-changed={}", rules.display());
    let mut all = Vec::new();
    files(&rules, &mut all);
    all.sort();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in &all {
        println!("cargo:rerun-if-changed={}", p.display());
        let rel = p.strip_prefix(&rules).unwrap_or(p);
        fnv(&mut h, rel.to_string_lossy().replace('\\', "/").as_bytes());
        fnv(&mut h, &std::fs::read(p).unwrap_or_default());
    }
    let checks = std::fs::read_to_string(rules.join("checks.toml")).unwrap_or_default();
    let count = checks.matches("[[rule]]").count();
    let builds =
        std::fs::read_to_string(rules.join("builds/exchange-builds.csv")).unwrap_or_default();
    let rows = builds
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let newest = builds
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3))
        .filter_map(|u| update_order(u).map(|o| (o, u.to_string())))
        .max()
        .map_or_else(|| "none".to_string(), |(_, u)| u);
    println!(
        "cargo:rustc-env=EXHUNT_LONG_VERSION={} (rule pack {:012x}: {count} checks; Exchange build table: {rows} builds, newest update {newest})",
        env!("CARGO_PKG_VERSION"),
        h >> 16
    );
}
