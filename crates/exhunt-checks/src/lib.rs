//! The detection catalogue of exhunt, the correlation of findings into an attack story, and the
//! verdict.
//!
//! One module per campaign (`proxylogon`, `proxyshell`), IOC packs (`ioc`), the chain's last link
//! (`webshell`), what the server code of web pages can do (`pagecode`), Sigma matches on Windows
//! events (`events`), process ancestry across events (`behaviour`), the engine that drives readers
//! and checks (`engine`), and the correlation that grades each request on its most specific log
//! line and attributes findings to the campaign whose chain they join (`correlate`). A check never knows
//! how its findings are rendered; renderers never know which check made a finding.

#![deny(missing_docs)]

pub mod behaviour;
pub mod check;
pub mod correlate;
pub mod engine;
pub mod events;
pub mod files;
pub mod iisconfig;
pub mod ioc;
pub mod pagecode;
pub mod proxylogon;
pub mod proxyshell;
pub mod sigmaweb;
pub mod story;
pub mod verdict;
pub mod webshell;

pub use engine::{Engine, EngineError, Progress, ScanOptions};
