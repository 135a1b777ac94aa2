#![no_main]
//! Windows event exports (JSON Lines, arrays, concatenated objects, mixed with other lines):
//! the nesting-aware scanner, the three event shapes and the built-in event rules.
use std::sync::OnceLock;

use exhunt_rules::sigma::SigmaSet;
use libfuzzer_sys::fuzz_target;

static RULES: OnceLock<SigmaSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rules = RULES.get_or_init(SigmaSet::builtin);
    let mut input = data;
    let read = exhunt_sources::export::read_export(
        &mut input,
        &|_, _| true,
        &mut |ev, line, _| Some((rules.match_event(ev).len(), line)),
    );
    assert!(read.stats.records as usize >= read.results.len());
    assert_eq!(read.stats.bytes, data.len() as u64);
});
