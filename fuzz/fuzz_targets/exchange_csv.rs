#![no_main]
//! Exchange CSV logs (HttpProxy, ECP): directives, bare headers, quoted values, encodings.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read(
        exhunt_sources::LogFormat::ExchangeCsv,
        &["ServerInfo~", r"Server~[^~,/\r\n]*/", "VirtualDirectory"],
        data,
    );
    common::read(exhunt_sources::LogFormat::Text, &["Download failed"], data);
});
