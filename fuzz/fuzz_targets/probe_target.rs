//! Target specifications (what users type or list in @files): parse or refuse, never panic, and
//! a parsed block's size matches what it expands to (checked for small blocks).
#![no_main]
use exhunt_probe::targets::{AddrSet, Spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = Spec::parse(&text) {
        if spec.size() <= 4096 {
            assert_eq!(spec.targets(&[443]).count() as u128, spec.size());
        }
        let mut set = AddrSet::default();
        set.add(&spec);
        set.seal();
        for t in spec.targets(&[443]).take(16) {
            assert!(set.contains_target(&t), "{t:?}");
        }
    }
});
