//! The command line: clap's types and the value parsers, nothing that runs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use exhunt_report::Format;

use crate::commands::{collect, probe, remediate, serve};
use crate::upload::UploadArgs;

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  no evidence: every log the checks need was read and covers the exposure window
  1  findings: exploitation attempted or the server compromised
  2  error: bad arguments or a failure of exhunt itself
  3  inconclusive: nothing found, but the logs do not cover what a clean answer needs
  4  added to 0, 1 or 3 when --upload failed (the local result was still written):
     4 no evidence, 5 findings, 7 inconclusive; the verdict is the code's last two bits";

#[derive(Parser)]
#[command(name = "exhunt", version, long_version = env!("EXHUNT_LONG_VERSION"), about = "Find evidence of ProxyLogon and its successors on Microsoft Exchange servers", after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Scan an Exchange server's evidence: a live install (its V15 folder), a mounted C: image,
    /// a folder of copied logs, or a triage .zip (read in place, never extracted).
    #[command(after_help = EXIT_CODES)]
    Scan(ScanArgs),
    /// Re-render saved results (`scan --format json`): one file, or several merged into one
    /// report of an organisation (a DAG of several servers is normal).
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
    /// Which Exchange servers are exposed right now: read each server's build (and, with
    /// --active, run the public detection checks) over the network, without exploiting.
    #[command(after_help = probe::PROBE_EXIT_CODES)]
    Probe(probe::ProbeArgs),
    /// Make a triage package of a server's evidence (live system, mounted image or C:-like
    /// folder): a zip with a manifest of original paths, times and SHA-256, that `scan` reads
    /// as it would read the server; `--verify` checks one.
    #[command(after_help = collect::COLLECT_EXIT_CODES)]
    Collect(collect::CollectArgs),
    /// From a verdict to a plan and a reversible cleanup: `plan` (from a saved result),
    /// `apply` (quarantine into a vault, journaled; dry run unless --yes), `rollback`, `verify`.
    #[command(after_help = remediate::REMEDIATE_EXIT_CODES)]
    Remediate(remediate::RemediateArgs),
    /// Show the built-in rules.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// The fleet server for MSSPs and CERTs: scan results and probe rows of many
    /// organisations in one database (SQLite or PostgreSQL), a JSON API with per-organisation
    /// tokens.
    Serve(serve::ServeArgs),
}

#[derive(Subcommand)]
pub(crate) enum RulesAction {
    /// List the built-in rules.
    List,
    /// Show one rule in full.
    Show {
        /// Rule id, e.g. EXH-PL-1.
        id: String,
    },
    /// Print the literal prefilters per log kind, one per line (`KIND<TAB>LITERAL`).
    #[command(hide = true)]
    Prefilters,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OutFormat {
    /// Summary for a person: verdicts, then the story, then coverage.
    Text,
    /// The whole result (schema/scan-result.v1.json).
    Json,
    /// One finding per line.
    Jsonl,
    /// Timesketch CSV timeline (message, datetime, timestamp_desc, …): findings and context
    /// events (coverage begins and ends, builds and patches first seen).
    Csv,
    /// The same timeline as Timesketch JSON Lines.
    Timeline,
    /// One self-contained HTML page (verdicts, story and coverage charts, findings table).
    Html,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Text => Format::Text,
            OutFormat::Json => Format::Json,
            OutFormat::Jsonl => Format::Jsonl,
            OutFormat::Csv => Format::Csv,
            OutFormat::Timeline => Format::Timeline,
            OutFormat::Html => Format::Html,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct ScanArgs {
    /// Folders, files or .zip triage packages; each target is judged as one server.
    #[arg(required = true, value_name = "TARGET")]
    pub(crate) targets: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: OutFormat,
    /// Write the result to FILE instead of stdout (never inside a target).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Only consider records at or after this UTC time (2021-03-01 or 2021-03-01T12:00:00Z).
    /// A bound that cuts the exposure window makes a clean answer inconclusive.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only consider records before this UTC time.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Worker threads (default: one per CPU).
    #[arg(short = 'j', long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Print only the result (no progress, no warnings).
    #[arg(short, long, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// List every finding and coverage problem; debug logging on stderr.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// No colours (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long)]
    pub(crate) no_color: bool,
    /// The Exchange install folder as it is on the server, when not the default
    /// (e.g. 'D:\Exchange Server\V15'); used to tell healthy OAB download paths.
    #[arg(long, value_name = "PATH")]
    pub(crate) exchange_path: Option<String>,
    /// Look at every file of the target (YARA, hashes, magic), not only web roots, memory
    /// dumps and archives in staging places.
    #[arg(long)]
    pub(crate) deep: bool,
    /// Also run the YARA rules in DIR (a folder, searched recursively, or a file), loaded as
    /// they are; rejected rules are reported. Repeatable. The folder itself is never scanned.
    #[arg(long, value_name = "DIR")]
    pub(crate) yara: Vec<PathBuf>,
    /// Also match file hashes from FILE: CSV, a STIX 2.1 bundle (.json) or a MISP feed folder.
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) ioc: Vec<PathBuf>,
    /// Also run the Sigma rules in DIR (a folder, searched recursively, or a file) on Windows
    /// events and IIS logs, loaded as they are (e.g. a SigmaHQ checkout); rules that cannot be
    /// loaded are listed with the reason. Repeatable. The folder itself is never scanned.
    #[arg(long, value_name = "DIR")]
    pub(crate) sigma: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) upload: UploadArgs,
}

#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// Result files written by `exhunt scan --format json`.
    #[arg(required = true, value_name = "RESULT.json")]
    pub(crate) results: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: OutFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Every finding and coverage problem.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// No colours.
    #[arg(long)]
    pub(crate) no_color: bool,
    /// Upload each saved result (each of its servers) to an exhunt serve, e.g. after a failed
    /// `scan --upload`; the options are those of `scan`.
    #[command(flatten)]
    pub(crate) upload: UploadArgs,
}

/// A `--since`/`--until` value as a UTC bound.
pub(crate) fn parse_time(
    flag: &str,
    v: &Option<String>,
) -> Result<Option<exhunt_model::Timestamp>> {
    match v {
        None => Ok(None),
        Some(s) => exhunt_sources::time::parse_bound(s)
            .map(Some)
            .with_context(|| format!("{flag} {s:?}: expected a UTC date or date-time such as 2021-03-01 or 2021-03-01T12:00:00Z")),
    }
}
