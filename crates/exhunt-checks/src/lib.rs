//! The detection catalogue of exhunt, the correlation of findings into an attack story, and the
//! verdict.
//!
//! One module per campaign (`proxylogon`, `proxyshell`, `proxynotshell` — the `autodiscover.json`
//! SSRF that both later campaigns use is judged in `proxyshell`), IOC packs (`ioc`), the chain's last link (`webshell`), files on disk (`files`, with
//! `pagecode`, what the server code of web pages can do, and `iisconfig`), Sigma matches on
//! Windows events (`events`, `sigmaweb` for web logs), process ancestry across events
//! (`behaviour`), the list of checks and their rule ids (`catalogue`), the engine that drives
//! readers and checks (`engine`), the correlation that grades each request on its most specific
//! log line and attributes findings to the campaign whose chain they join (`correlate`), the
//! story (`story`) and the verdict (`verdict`). A check never knows how its findings are
//! rendered; renderers never know which check made a finding.

#![deny(missing_docs)]

pub mod behaviour;
pub mod catalogue;
pub mod check;
pub mod correlate;
pub mod engine;
pub mod events;
pub mod files;
pub mod ids;
pub mod iisconfig;
pub mod ioc;
pub mod pagecode;
pub mod proxylogon;
pub mod proxynotshell;
pub mod proxyshell;
pub mod sigmaweb;
pub mod story;
pub mod verdict;
pub mod webshell;

pub use engine::{Engine, EngineError, Progress, ScanOptions};
