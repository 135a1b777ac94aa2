#![no_main]
//! IIS W3C logs: `#Fields:` changing mid-file, `-` fields, dates and times.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(
        exhunt_sources::LogFormat::W3c,
        &["/ecp/", "/owa/auth/", "CorrelationID=<empty>"],
        data,
    );
});
