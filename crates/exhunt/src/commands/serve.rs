//! `exhunt serve`: the fleet server (crate `exhunt-serve`). This module only turns the command
//! line into its options and prints where it listens.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

/// Arguments of `exhunt serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Database: sqlite://PATH (created when missing) or postgres://USER@HOST/DB. From the
    /// environment, so that a PostgreSQL password is not on the command line.
    #[arg(
        long,
        env = "EXHUNT_SERVE_DB",
        default_value = "sqlite://exhunt-serve.db",
        hide_env_values = true
    )]
    db: String,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Largest request body accepted, in MiB (larger uploads get 413).
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Seconds a client has to send its request body (slower ones get 408).
    #[arg(long, default_value_t = 120)]
    body_timeout: u64,
    /// Runtime threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub(crate) fn serve(args: ServeArgs) -> Result<u8> {
    if args.max_body_mib == 0 || args.body_timeout == 0 {
        bail!("--max-body-mib and --body-timeout must be at least 1");
    }
    let opts = exhunt_serve::server::Options {
        db: args.db,
        listen: args.listen,
        api: exhunt_serve::api::Config {
            body_limit: args.max_body_mib.saturating_mul(1024 * 1024),
            body_timeout: Duration::from_secs(args.body_timeout),
        },
        threads: args.threads,
    };
    exhunt_serve::server::run_blocking(opts, |addr, token| {
        eprintln!("exhunt serve: listening on http://{addr} (JSON API under /api/v1)");
        if let Some(t) = token {
            eprintln!(
                "exhunt serve: first operator token (shown once; only its hash is stored):\n{}",
                t.secret
            );
        }
    })?;
    Ok(0)
}
