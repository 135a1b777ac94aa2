//! `exhunt probe`: which Exchange servers are exposed right now, read from the network
//! without exploiting anything (probe-and-ecosystem.md part A).
//!
//! By default only version checks run: the build read from the OWA logon page and the ECP
//! export-tool manifest, mapped through the build table in `rules/` to product, CU and update,
//! and from there to patched, vulnerable or indeterminate per CVE. `--active` adds the public
//! behaviour checks, one request each, never an exploit payload and never a third-party
//! callback. Every row says which signal decided.
//!
//! The probe stays in the scope it is given (a scope file, an exclude list, a size limit that
//! needs `--allow-large` to pass), limits its rate globally and per host, and names itself in
//! its User-Agent.

pub mod check;
pub mod error;
pub mod http;
pub mod limit;
pub mod model;
pub mod output;
pub mod run;
pub mod targets;

pub use error::ProbeError;

/// The User-Agent: the tool, its version and what it does, so that a server's operator reading
/// the log knows what called.
pub fn user_agent(contact: Option<&str>) -> String {
    let base = format!(
        "exhunt-probe/{} (Exchange exposure check; version and detection requests only, no exploitation)",
        env!("CARGO_PKG_VERSION")
    );
    match contact {
        Some(c) if !c.trim().is_empty() => {
            let clean: String = c.chars().filter(|ch| !ch.is_control()).take(200).collect();
            format!("{base} contact: {clean}")
        }
        _ => base,
    }
}
