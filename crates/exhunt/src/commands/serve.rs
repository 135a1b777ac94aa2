//! `exhunt serve`: the fleet server (crate `exhunt-serve`). This module turns the command line
//! into its options, scans the examples for `--demo`, and prints where it listens.

use std::path::PathBuf;
#[cfg(feature = "serve")]
use std::time::Duration;

#[cfg(feature = "serve")]
use anyhow::Context;
use anyhow::{Result, bail};
use clap::Args;
#[cfg(feature = "serve")]
use exhunt_checks::{Engine, ScanOptions};

/// Arguments of `exhunt serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Database: sqlite://PATH (created when missing) or postgres://USER@HOST/DB. From the
    /// environment, so that a PostgreSQL password is not on the command line. With --demo and
    /// no --db: an in-memory database, gone when the server stops. PostgreSQL over the network:
    /// add `?sslmode=verify-full` (Mozilla's roots) and `&sslrootcert=CA.pem` for a private CA.
    #[arg(long, env = "EXHUNT_SERVE_DB", hide_env_values = true)]
    db: Option<String>,
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Serve HTTPS: the server's certificate chain (PEM: its certificate first, then the
    /// intermediates). Needs --tls-key. Without both, plain HTTP (loopback, or behind a proxy
    /// that terminates TLS).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request body accepted, in MiB (larger uploads get 413).
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Seconds a client has to send its request body (slower ones get 408).
    #[arg(long, default_value_t = 120)]
    body_timeout: u64,
    /// Dashboard cookies `Secure` (with the `__Host-` prefix): true or false. Default: true,
    /// except when listening on a loopback address or with --demo (plain HTTP there).
    #[arg(long, value_name = "true|false")]
    secure_cookies: Option<bool>,
    /// Days a sent notification may stay unacknowledged before it escalates to level 1 (level 2
    /// after twice as long). The server looks every 10 minutes.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    escalate_days: u64,
    /// A reverse proxy (address or CIDR) whose X-Forwarded-For names the client: its right-most
    /// address that is not a trusted proxy is the client the login throttle counts and the
    /// audit log names. Without it, behind a proxy every client is the proxy. Repeatable.
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<String>,
    /// Runtime threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Start with the examples loaded: each folder of DIR (default `examples`) is scanned and
    /// its result stored under a demo organisation, with invented probe rows beside them.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "examples")]
    demo: Option<PathBuf>,
    /// Create a dashboard user NAME in the database and exit (no server is started). The
    /// password is read from --password-file, never from the command line.
    #[arg(long, value_name = "NAME", requires_all = ["role", "password_file"], conflicts_with = "demo")]
    add_user: Option<String>,
    /// The new user's role: reader, uploader (both need --org) or operator.
    #[arg(long, value_name = "reader|uploader|operator", requires = "add_user")]
    role: Option<String>,
    /// The new user's organisation (its id), for a reader or an uploader.
    #[arg(long, value_name = "ID", requires = "add_user")]
    org: Option<i64>,
    /// File holding the new user's password (its first line); `-` reads it from standard input.
    #[arg(long, value_name = "FILE", requires = "add_user")]
    password_file: Option<PathBuf>,
}

/// `--add-user`: the password from its file (first line, without the line break).
#[cfg(feature = "serve")]
fn add_user(db: &str, args: &ServeArgs, name: &str) -> Result<u8> {
    use std::io::Read;
    let Some(role) = args.role.as_deref().and_then(exhunt_serve::Role::parse) else {
        bail!("--role: reader, uploader or operator");
    };
    let Some(file) = &args.password_file else {
        bail!("--add-user needs --password-file");
    };
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("--password-file -: reading standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("--password-file: reading {}", file.display()))?;
    }
    let password = text.lines().next().unwrap_or("").to_string();
    let input = exhunt_serve::users::UserInput {
        name: name.to_string(),
        role,
        org: args.org,
        password,
    };
    let u = exhunt_serve::users::add_user_blocking(db, &input)?;
    eprintln!(
        "exhunt serve: user {:?} ({}{}) created",
        u.name,
        u.role.as_str(),
        u.org_id
            .map(|o| format!(" of organisation #{o}"))
            .unwrap_or_default()
    );
    Ok(0)
}

/// Scans each example folder, as `exhunt scan --format json` would.
#[cfg(feature = "serve")]
fn scan_examples(dir: &PathBuf) -> Result<Vec<(String, String)>> {
    let engine = Engine::new(ScanOptions::default()).context("starting the scan engine")?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("--demo: reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("--demo: {} has no example folders", dir.display());
    }
    let mut out = Vec::new();
    for n in names {
        eprintln!("exhunt serve: demo: scanning {}", dir.join(&n).display());
        let result = engine.scan(&[dir.join(&n)]);
        out.push((n, serde_json::to_string(&result)?));
    }
    Ok(out)
}

/// A build without the fleet server (the responder build) says so instead.
#[cfg(not(feature = "serve"))]
pub(crate) fn serve(_: ServeArgs) -> Result<u8> {
    bail!(
        "this exhunt was built without the fleet server (the `serve` feature; the build responders copy onto a server leaves it out): build with the default features to run `exhunt serve`"
    )
}

#[cfg(feature = "serve")]
pub(crate) fn serve(args: ServeArgs) -> Result<u8> {
    // Errors the API hides from clients (database failures) are logged here, on stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXHUNT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    if args.max_body_mib == 0 || args.body_timeout == 0 || args.escalate_days == 0 {
        bail!("--max-body-mib, --body-timeout and --escalate-days must be at least 1");
    }
    let demo = match &args.demo {
        Some(dir) => scan_examples(dir)?,
        None => Vec::new(),
    };
    let db = match (args.db.clone(), args.demo.is_some()) {
        (Some(db), _) => db,
        (None, true) => "sqlite::memory:".to_string(),
        (None, false) => "sqlite://exhunt-serve.db".to_string(),
    };
    if let Some(name) = &args.add_user {
        return add_user(&db, &args, name);
    }
    let trusted_proxies = args
        .trusted_proxy
        .iter()
        .map(|p| {
            let cidr = if p.contains('/') {
                p.clone()
            } else if p.contains(':') {
                format!("{p}/128")
            } else {
                format!("{p}/32")
            };
            exhunt_serve::scope::parse_cidr(&cidr)
                .map_err(|e| anyhow::anyhow!("--trusted-proxy {p}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = exhunt_serve::server::Options {
        db,
        listen: args.listen,
        api: exhunt_serve::api::Config {
            body_limit: args.max_body_mib.saturating_mul(1024 * 1024),
            body_timeout: Duration::from_secs(args.body_timeout),
            secure_cookies: args.secure_cookies,
            trusted_proxies,
            escalation: exhunt_serve::escalate::Policy {
                after: Duration::from_secs(args.escalate_days.min(36_500) * 24 * 3600),
                ..Default::default()
            },
            ..Default::default()
        },
        threads: args.threads,
        demo,
        tls: args.tls_cert.zip(args.tls_key),
    };
    exhunt_serve::server::run_blocking(opts, |r| {
        eprintln!(
            "exhunt serve: listening on {}://{} (dashboard; JSON API under /api/v1)",
            if r.tls { "https" } else { "http" },
            r.addr
        );
        if let Some(t) = r.operator {
            eprintln!(
                "exhunt serve: first operator token (shown once; only its hash is stored):\n{}",
                t.secret
            );
        }
        if let Some(t) = r.demo_reader {
            eprintln!(
                "exhunt serve: demo reader token of {:?} (sees only its organisation):\n{}",
                exhunt_serve::demo::ORGS[0].name,
                t.secret
            );
        }
        for l in r.demo_logins {
            eprintln!(
                "exhunt serve: demo login ({}), password shown once: {} {}",
                l.role, l.name, l.password
            );
        }
    })?;
    Ok(0)
}
