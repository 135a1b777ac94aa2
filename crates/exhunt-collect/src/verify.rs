//! `exhunt collect --verify`: every file of a package against the manifest's SHA-256 and size,
//! and the package against the hash written beside it.
//!
//! Why both: the per-file hashes say which evidence changed (and the manifest is what the
//! court copy is compared with); the package hash catches a change anywhere, including in the
//! manifest itself or in bytes no member covers.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use exhunt_sources::package::{FILES_PREFIX, MANIFEST_NAME, Origins};
use sha2::{Digest, Sha256};

use crate::CollectError;

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Files checked.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Every difference found, one line each.
    pub mismatches: Vec<String>,
    /// SHA-256 of the package as it is now.
    pub package_sha256: String,
    /// Whether it equals the hash beside the package (`None`: no `.sha256` file).
    pub package_hash_ok: Option<bool>,
}

impl VerifyReport {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty() && self.package_hash_ok != Some(false)
    }
}

fn not_a_package(path: &Path, reason: impl ToString) -> CollectError {
    CollectError::NotAPackage {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Verifies a package.
pub fn verify(package: &Path) -> Result<VerifyReport, CollectError> {
    let mut report = VerifyReport::default();
    // The package hash first: it does not depend on the package being readable.
    let mut hash = Sha256::new();
    let mut f = File::open(package).map_err(|e| not_a_package(package, e))?;
    io::copy(&mut f, &mut HashWriter(&mut hash)).map_err(|e| not_a_package(package, e))?;
    report.package_sha256 = hex::encode(hash.finalize());
    if let Ok(text) = std::fs::read_to_string(crate::sha256_path(package)) {
        let expected = text.split_whitespace().next().unwrap_or("");
        let ok = expected.eq_ignore_ascii_case(&report.package_sha256);
        report.package_hash_ok = Some(ok);
        if !ok {
            report.mismatches.push(format!(
                "package: SHA-256 {} differs from {expected} written beside it",
                report.package_sha256
            ));
        }
    }

    let file = File::open(package).map_err(|e| not_a_package(package, e))?;
    let mut archive = match zip::ZipArchive::new(file) {
        Ok(a) => a,
        Err(e) => {
            report
                .mismatches
                .push(format!("package: not a readable zip: {e}"));
            return Ok(report);
        }
    };
    let origins = match Origins::of(&mut archive) {
        None => return Err(not_a_package(package, format!("no {MANIFEST_NAME}"))),
        Some(Err(e)) => {
            report.mismatches.push(format!("manifest: {e}"));
            return Ok(report);
        }
        Some(Ok(o)) => o,
    };
    let mut listed = std::collections::HashSet::new();
    let mut buf = vec![0u8; 256 << 10];
    for entry in &origins.manifest.files {
        let Some(member) = &entry.member else {
            continue;
        };
        listed.insert(member.clone());
        report.files += 1;
        let mut m = match archive.by_name(member) {
            Ok(m) => m,
            Err(e) => {
                report
                    .mismatches
                    .push(format!("{}: member {member} missing: {e}", entry.original));
                continue;
            }
        };
        let mut h = Sha256::new();
        let mut n = 0u64;
        let read = loop {
            match m.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(k) => {
                    h.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        report.bytes += n;
        if let Err(e) = read {
            report.mismatches.push(format!(
                "{}: member {member} cannot be read: {e}",
                entry.original
            ));
            continue;
        }
        let got = hex::encode(h.finalize());
        if got != entry.sha256 || n != entry.size {
            report.mismatches.push(format!(
                "{}: SHA-256 {got} ({n} bytes), manifest says {} ({} bytes)",
                entry.original, entry.sha256, entry.size
            ));
        }
    }
    for i in 0..archive.len() {
        if let Ok(m) = archive.by_index_raw(i) {
            let name = String::from_utf8_lossy(m.name_raw()).into_owned();
            if name.starts_with(FILES_PREFIX) && !m.is_dir() && !listed.contains(&name) {
                report
                    .mismatches
                    .push(format!("member {name} is not in the manifest"));
            }
        }
    }
    Ok(report)
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
