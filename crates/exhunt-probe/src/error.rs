//! Why a probe run could not start or finish. A target that does not parse or does not answer is
//! not an error: it becomes a row with its reason. These stop the run.

use std::path::PathBuf;

/// An error that stops a probe run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A target, scope or exclude list, or the output of a run to resume, could not be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadList {
        /// What the file is (`target list`, `output to resume`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What reading said.
        source: std::io::Error,
    },
    /// The partial last line a killed run left in the output could not be cut for `--resume`.
    #[error("cannot cut the partial last line of {path} to resume: {source}")]
    Resume {
        /// The output of the earlier run.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// An entry of a scope or exclude list does not parse: a scope that does not parse must stop
    /// the run, not widen it.
    #[error("{text:?}: {reason}")]
    BadEntry {
        /// The entry as written.
        text: String,
        /// Why it is not an address, block, range or host name.
        reason: String,
    },
    /// The scope is larger than the limit: `hard` when no option lifts it.
    #[error("{}", scope_message(*.targets, *.limit, *.hard))]
    ScopeTooLarge {
        /// Targets in the scope (addresses × ports).
        targets: u128,
        /// The limit passed.
        limit: u128,
        /// Whether `--allow-large` cannot lift it.
        hard: bool,
    },
    /// A part of the prober could not start (the runtime, TLS, the build table).
    #[error("cannot start {what}: {reason}")]
    Start {
        /// What did not start.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Writing rows or the summary failed.
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    /// The thread reading the target lists stopped (a bug of exhunt).
    #[error("the target reader stopped unexpectedly")]
    Reader,
}

fn scope_message(targets: u128, limit: u128, hard: bool) -> String {
    if hard {
        format!("the scope has {targets} targets, more than {limit}; probe it in parts")
    } else {
        format!(
            "the scope has {targets} targets (limit {limit}); check it, and pass --allow-large if it is what you own"
        )
    }
}
