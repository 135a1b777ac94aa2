//! From a scan target to artefacts: walking folders and triage zips, classifying files, streaming
//! readers for Exchange CSV logs and IIS W3C logs, and the raw material of the coverage ledger.
//!
//! Why it is built this way:
//! - Evidence is read in place and read-only. Folders are walked without following symbolic
//!   links; zip members are streamed out of the archive, never extracted to disk.
//! - Every file ends up somewhere: claimed by an [`ArtefactKind`](exhunt_model::ArtefactKind), or
//!   recorded as skipped with a reason. A scan that cannot say what it did not read cannot say
//!   "no evidence".
//! - Logs are huge. Readers search blocks of bytes for the literal prefilters of the checks first
//!   and split only candidate lines into fields, so the cost is close to that of `rg -c`.
//! - Bad input is normal: every problem becomes an `exhunt_model::Problem` with a cause and a message, and reading goes on.

#![deny(missing_docs)]

pub mod classify;
pub mod decode;
pub mod evtx;
pub mod export;
pub mod inventory;
pub mod limits;
pub mod locations;
pub mod open;
pub mod package;
pub mod platform;
pub mod prefilter;
pub mod reader;
pub mod record;
pub mod time;
pub mod webroots;

pub use classify::{Classification, classify};
/// The event model lives in `exhunt_model` (rules and checks use it without the readers).
pub use exhunt_model::event;
pub use exhunt_model::{Val, WinEvent};
pub use inventory::{Inventory, Item, ItemSource, Opener, inventory, inventory_with};
pub use limits::Limits;
pub use reader::{ChunkStats, LogReader, ReadStats, SchemaCheck, Seed, Survey, Visit};
pub use record::{LogFormat, Record, Schema};
