//! `exhunt probe`: the command line of the network exposure probe (crate `exhunt-probe`).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use exhunt_probe::check::CheckOptions;
use exhunt_probe::http::Timeouts;
use exhunt_probe::model::{Row, State, Summary};
use exhunt_probe::output::{Format, Writer};
use exhunt_probe::run::{ProbeOptions, RowSink, resume_keys, run};
use exhunt_probe::targets::{AddrSet, Input, Shard, addr_set};

use crate::upload::{RowUploader, UPLOAD_FAILED, UploadArgs, Uploader};

pub(crate) const PROBE_EXIT_CODES: &str = "\
Exit codes:
  0  no Exchange server found vulnerable or undecided
  1  at least one server vulnerable
  2  error: bad arguments, a scope too large without --allow-large, an unreadable list
  3  no server vulnerable, but at least one Exchange server could not be decided
  4  added to 0, 1 or 3 when --upload failed (the local output was still written)";

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProbeFormat {
    /// A table of the Exchange servers found, then the summary by state, version and CVE.
    Text,
    /// One document: meta, summary, every row.
    Json,
    /// One row per line, written as each target finishes (what --resume reads).
    Jsonl,
    /// One row per line, flat columns.
    Csv,
}

#[derive(Args)]
pub(crate) struct ProbeArgs {
    /// Targets: host names, IPs, CIDRs (10.0.0.0/24), ranges (10.0.0.1-50), URLs, host:port,
    /// `@FILE` (one per line, # comments) or `-` (standard input).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// Ports for targets that name none.
    #[arg(short, long, value_delimiter = ',', default_value = "443")]
    ports: Vec<u16>,
    /// Only probe addresses and names listed in this file (CIDRs, ranges, hosts); a host name
    /// that resolves outside it is reported as skipped.
    #[arg(long, value_name = "FILE")]
    scope: Option<PathBuf>,
    /// Never probe these (CIDRs, ranges, hosts; comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "SPEC")]
    exclude: Vec<String>,
    /// Never probe what this file lists.
    #[arg(long, value_name = "FILE")]
    exclude_file: Option<PathBuf>,
    /// Accept a scope of more than --max-targets targets.
    #[arg(long)]
    allow_large: bool,
    /// Largest scope accepted without --allow-large.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    max_targets: u64,
    /// Also run the behaviour checks: the ProxyLogon cookie check, the ProxyShell autodiscover
    /// check and the test for Microsoft's rewrite-rule mitigations (one request each, no
    /// exploit payload, no third-party callback).
    #[arg(long)]
    active: bool,
    /// Targets probed at the same time.
    #[arg(short = 'c', long, default_value_t = 128, value_name = "N")]
    concurrency: usize,
    /// Requests per second in all (0 = no limit).
    #[arg(long, default_value_t = 500.0, value_name = "PER_SECOND")]
    rate: f64,
    /// Requests per second to one address (0 = no limit).
    #[arg(long, default_value_t = 5.0, value_name = "PER_SECOND")]
    per_host_rate: f64,
    /// TCP connect timeout, seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    connect_timeout: f64,
    /// TLS handshake timeout, seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    tls_timeout: f64,
    /// Timeout of one whole response, seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    read_timeout: f64,
    /// Upper bound of one target's whole probe, seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    target_timeout: f64,
    /// Connect retries after a refused or timed-out connection.
    #[arg(long, default_value_t = 1, value_name = "N")]
    retries: u32,
    /// Probe only shard I of N (e.g. 2/4): deterministic, so N machines cover the scope once.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Continue a killed run: skip the targets already in this JSONL output and append to it.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    resume: Option<PathBuf>,
    /// Output format (with --resume: jsonl).
    #[arg(short, long, value_enum, default_value_t = ProbeFormat::Text)]
    format: ProbeFormat,
    /// Write the output to a file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Who runs the probe (an address or URL), added to the User-Agent for the servers'
    /// operators.
    #[arg(long, value_name = "TEXT")]
    contact: Option<String>,
    /// List unreachable and non-Exchange targets in the text table too.
    #[arg(short, long)]
    verbose: bool,
    /// Use this address for a host name instead of DNS (NAME:IP, repeatable); the name still
    /// goes into SNI and the Host header.
    #[arg(long, value_name = "NAME:IP")]
    resolve: Vec<String>,
    /// Never query DNS: host names must be pinned with --resolve.
    #[arg(long)]
    no_dns: bool,
    /// Runtime threads (0 = one per core).
    #[arg(long, default_value_t = 0, hide = true)]
    threads: usize,
    /// With --upload the rows (as JSONL, whatever --format) go to the server in batches while
    /// the probe runs; with --resume the rows already in the file are sent too.
    #[command(flatten)]
    upload: UploadArgs,
}

fn secs(v: f64, what: &str) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0 && v < 86_400.0) {
        bail!("--{what} must be a number of seconds between 0 and 86400");
    }
    Ok(Duration::from_secs_f64(v))
}

pub(crate) fn probe(args: ProbeArgs) -> Result<u8> {
    let mut inputs = Vec::with_capacity(args.targets.len());
    for t in &args.targets {
        inputs.push(Input::from_arg(t).context("reading targets from standard input")?);
    }
    let mut exclude_inputs: Vec<Input> = args
        .exclude
        .iter()
        .map(|e| Input::Literal(e.clone()))
        .collect();
    if let Some(f) = &args.exclude_file {
        exclude_inputs.push(Input::File(f.clone()));
    }
    let exclude = addr_set(&exclude_inputs).context("exclude list")?;
    let scope = match &args.scope {
        Some(f) => {
            let s = addr_set(&[Input::File(f.clone())]).context("scope file")?;
            if s.is_empty() {
                bail!(
                    "scope file {} lists nothing: nothing would be probed",
                    f.display()
                );
            }
            s
        }
        None => AddrSet::default(),
    };
    let shard = args
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    if args.ports.is_empty() || args.ports.contains(&0) {
        bail!("--ports needs ports between 1 and 65535");
    }
    if !(args.rate >= 0.0 && args.per_host_rate >= 0.0) {
        bail!("--rate and --per-host-rate must be 0 (no limit) or more");
    }
    // Checked before probing: a bad URL or a missing token must not surface after the run.
    if args.upload.upload_org.is_some() {
        bail!(
            "--upload-org names the organisation of a scan result; the server assigns probe rows to organisations by their scopes"
        );
    }
    let uploader = Uploader::from_args(&args.upload)?;
    if let Some(up) = &uploader {
        up.preflight("probe", false);
    }
    let done = match &args.resume {
        Some(p) => resume_keys(p)?,
        None => Default::default(),
    };
    let mut pinned = Vec::new();
    for r in &args.resolve {
        let (name, ip) = r
            .split_once(':')
            .with_context(|| format!("--resolve {r:?}: expected NAME:IP"))?;
        let ip = ip
            .trim_matches(['[', ']'])
            .parse()
            .with_context(|| format!("--resolve {r:?}: {ip:?} is not an IP address"))?;
        pinned.push((name.to_ascii_lowercase(), ip));
    }
    let opts = ProbeOptions {
        inputs,
        ports: args.ports.clone(),
        exclude,
        scope,
        max_targets: u128::from(args.max_targets),
        allow_large: args.allow_large,
        concurrency: args.concurrency.clamp(1, 65_536),
        rate: args.rate,
        per_host_rate: args.per_host_rate,
        timeouts: Timeouts {
            connect: secs(args.connect_timeout, "connect-timeout")?,
            tls: secs(args.tls_timeout, "tls-timeout")?,
            read: secs(args.read_timeout, "read-timeout")?,
        },
        target_timeout: secs(args.target_timeout, "target-timeout")?,
        check: CheckOptions {
            active: args.active,
            retries: args.retries.min(10),
            max_candidates: 8,
        },
        shard,
        done,
        user_agent: exhunt_probe::user_agent(args.contact.as_deref()),
        threads: args.threads,
        pinned,
        dns: !args.no_dns,
    };
    let meta = serde_json::json!({
        "tool": "exhunt",
        "version": env!("CARGO_PKG_VERSION"),
        "started": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "targets": args.targets,
        "ports": args.ports,
        "active": args.active,
        "shard": args.shard,
        "user_agent": opts.user_agent,
    });
    let (format, out): (Format, Box<dyn Write>) = match (&args.resume, &args.output) {
        (Some(p), _) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {} to append", p.display()))?;
            (Format::Jsonl, Box::new(io::BufWriter::new(f)))
        }
        (None, Some(p)) => {
            let f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            (args.format.into(), Box::new(io::BufWriter::new(f)))
        }
        (None, None) => (
            args.format.into(),
            Box::new(io::BufWriter::new(io::stdout())),
        ),
    };
    let mut rows = uploader.map(RowUploader::start);
    if let (Some(up), Some(p)) = (&mut rows, &args.resume) {
        // Rows of the earlier run(s), which may not have reached the server (stored once).
        resend_rows(up, p)?;
    }
    let mut sink = Tee {
        writer: Writer::new(out, format, args.verbose, meta),
        rows: rows.as_mut(),
    };
    let summary = run(opts, &mut sink)?;
    let uploaded = rows.is_none_or(|r| r.finish(false));
    let to_file = args.output.is_some() || args.resume.is_some();
    if format != Format::Text && (to_file || io::stderr().is_terminal()) {
        eprint!("{}", exhunt_probe::output::summary_text(&summary));
    }
    let code = exit_code(&summary);
    Ok(if uploaded { code } else { code + UPLOAD_FAILED })
}

/// The output writer, and the upload beside it: each row as the JSONL line `--format jsonl`
/// writes, so that rows sent now and the same rows sent later from a file are one on the server.
struct Tee<'a, W: Write> {
    writer: Writer<W>,
    rows: Option<&'a mut RowUploader>,
}

impl<W: Write> RowSink for Tee<'_, W> {
    fn row(&mut self, row: &Row) -> io::Result<()> {
        if let Some(up) = self.rows.as_deref_mut() {
            up.push(&serde_json::to_vec(row)?);
        }
        self.writer.row(row)
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.writer.finish(summary)
    }
}

/// Queues the complete rows of a `--resume` file for upload (after `resume_keys`, which cut an
/// incomplete last line).
fn resend_rows(up: &mut RowUploader, path: &std::path::Path) -> Result<()> {
    use std::io::BufRead;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in io::BufReader::new(f).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if serde_json::from_slice::<Row>(&line).is_ok() {
            up.push(&line);
        }
    }
    Ok(())
}

fn exit_code(s: &Summary) -> u8 {
    if s.count(State::Vulnerable) > 0 {
        1
    } else if s.count(State::Indeterminate) > 0 {
        3
    } else {
        0
    }
}

impl From<ProbeFormat> for Format {
    fn from(f: ProbeFormat) -> Format {
        match f {
            ProbeFormat::Text => Format::Text,
            ProbeFormat::Json => Format::Json,
            ProbeFormat::Jsonl => Format::Jsonl,
            ProbeFormat::Csv => Format::Csv,
        }
    }
}
