#![no_main]
//! The EVTX adapter: the evtx crate's parser, the System-only prefilter, the WinEvent model and
//! the built-in event rules, on arbitrary bytes (seeded with real logs by fuzz/run.sh).
use std::sync::{Arc, OnceLock};

use exhunt_rules::sigma::SigmaSet;
use libfuzzer_sys::fuzz_target;

static RULES: OnceLock<Arc<SigmaSet>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rules = RULES.get_or_init(|| Arc::new(SigmaSet::builtin())).clone();
    let r2 = rules.clone();
    let read = exhunt_sources::evtx::read_evtx(
        std::io::Cursor::new(data.to_vec()),
        data.len() as u64,
        1,
        Arc::new(|_, _, _| true),
        move |ev| {
            let _ = ev.excerpt(300);
            Some(r2.match_event(ev).len())
        },
    );
    assert!(read.stats.records as usize >= read.results.len());
});
