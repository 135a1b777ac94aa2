#![no_main]
//! User IOC feeds: CSV, STIX 2.1 bundles, MISP events.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    for name in ["f.csv", "f.json"] {
        let p = dir.path().join(name);
        if std::fs::write(&p, data).is_ok() {
            let _ = exhunt_rules::feeds::load(&p);
        }
    }
});
