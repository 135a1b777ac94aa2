#![no_main]
//! Events in the JSON shape of the evtx crate (`evtx_dump` output): arbitrary JSON through the
//! WinEvent model and the built-in event rules.
use std::sync::OnceLock;

use exhunt_rules::sigma::SigmaSet;
use libfuzzer_sys::fuzz_target;

static RULES: OnceLock<SigmaSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rules = RULES.get_or_init(SigmaSet::builtin);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Some(ev) = exhunt_sources::WinEvent::from_evtx_json(&v) {
        let _ = ev.excerpt(200);
        let _ = rules.match_event(&ev);
    }
});
