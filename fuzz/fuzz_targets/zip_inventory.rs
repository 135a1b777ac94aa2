#![no_main]
//! Zip triage packages: listing members (names, traversal, encryption, nesting) and streaming
//! them out under the limits.
use std::io::Read;

use exhunt_sources::{Limits, Opener, inventory};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("t.zip");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let limits = Limits {
        max_zip_entries: 64,
        max_entry_bytes: 1 << 20,
        max_archive_bytes: 4 << 20,
        ratio_grace_bytes: 1 << 16,
        ..Limits::default()
    };
    let inv = inventory(&path, &limits);
    let mut opener = Opener::new();
    let mut buf = [0u8; 4096];
    for item in &inv.items {
        if let Ok(mut r) = opener.open(item, &limits) {
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
    }
});
