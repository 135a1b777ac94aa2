//! `exhunt remediate`: from a verdict to a plan, and a cleanup that never loses evidence.
//!
//! Why this crate is shaped the way it is: the tools of 2021 changed servers and deleted
//! detections with no copy kept (Microsoft's scanner), their rollback could not restore what
//! was deleted, and the cleanup the CISA directive asked for existed nowhere as a checklist tied
//! to what was found. So:
//!
//! - [`plan()`] is pure: a scan result in, a plan out. Every action names the findings that justify
//!   it (by their index in the server's findings, `F12`) and says what the evidence cannot know.
//!   Configuration on a live Exchange is emitted as PowerShell ([`ps`]) that records the current
//!   value first and refuses to run twice; exhunt itself never speaks to Exchange.
//! - [`apply()`] is the only code in the project that changes a system. It refuses unless the
//!   evidence was preserved first, writes (and fsyncs) each step to a journal *before* doing it,
//!   copies every file into a vault and verifies the copy before the original is removed.
//! - [`apply::rollback`] restores every file byte for byte with its times, from the journal and
//!   the vault, and refuses when a vault copy does not hash to what was recorded.
//! - [`verify`] compares two results: what was cleaned, what remains, what is new.
//!
//! Platform-specific code (owner, permissions, times) lives in [`platform`].

pub mod apply;
pub mod plan;
pub mod platform;
pub mod ps;
pub mod render;
pub mod verify;

#[cfg(test)]
mod tests;

pub use apply::{ApplyOptions, ApplyReport, Preservation, RollbackReport, apply, rollback};
pub use plan::{Action, ActionKind, FileFacts, Plan, ServerPlan, Urgency, plan};
pub use verify::{Comparison, compare};

/// What can go wrong in remediation. Every refusal says why and what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Apply refused to start, nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    /// A plan or journal that cannot be read.
    #[error("{path}: not a readable {what}: {reason}")]
    BadInput {
        /// The path.
        path: String,
        /// Plan or journal.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A failure injected by a test (`ApplyOptions::fail_after`; a journal write or a
    /// filesystem step).
    #[error("stopped after step {0} (failure injected for testing)")]
    Injected(usize),
}

pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> RemediateError {
    RemediateError::Io {
        path: path.display().to_string(),
        source,
    }
}
