//! exhunt: was this Exchange server breached, and how far did the attacker get?
//!
//! The binary is thin: `cli` parses the command line, `commands` run each subcommand (the
//! engine, the probe and the renderers do the work in their crates), `output` writes results and
//! draws progress. Exit codes carry the verdict so that scripts and fleets of servers can act on
//! it.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod upload;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // Before clap: its errors would repeat a token given on the command line.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Err(e) = upload::refuse_tokens_in_args(&args) {
        eprintln!("exhunt: error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(args);
    let run = match cli.command {
        Command::Scan(args) => commands::scan::scan(args),
        Command::Report(args) => commands::report::report(args),
        Command::Probe(args) => commands::probe::probe(args),
        Command::Collect(args) => commands::collect::collect(args),
        Command::Remediate(args) => commands::remediate::remediate(args),
        Command::Rules { action } => commands::rules::rules(action),
        Command::Serve(args) => commands::serve::serve(args),
    };
    match run {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The error may hold evidence (a path, a member name): never raw on a terminal.
            eprintln!(
                "exhunt: error: {}",
                exhunt_report::safe::terminal(&format!("{e:#}"))
            );
            ExitCode::from(2)
        }
    }
}
