//! The probe's HTTP response reader on arbitrary server bytes: never panics, never keeps more
//! than its limits.
#![no_main]
use exhunt_probe::http::{Limits, parse_response_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { head: 4096, body: 1024 };
    if let Ok(r) = parse_response_bytes(data, limits) {
        assert!(r.body.len() <= limits.body);
        assert!(r.headers.len() <= 128);
    }
});
