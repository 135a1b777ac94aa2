//! exhunt: was this Exchange server breached, and how far did the attacker get?
//!
//! The binary is thin: it parses the command line, builds the engine, draws progress on stderr,
//! and hands the result to a renderer. Exit codes carry the verdict so that scripts and fleets of
//! servers can act on it.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use exhunt_checks::{Engine, ScanOptions};
use exhunt_report::{Format, TextOptions, render};
use exhunt_sources::Limits;

mod collect;
mod probe;

const EXIT_CODES: &str = "\
Exit codes:
  0  no evidence: every log the checks need was read and covers the exposure window
  1  findings: exploitation attempted or the server compromised
  2  error: bad arguments or a failure of exhunt itself
  3  inconclusive: nothing found, but the logs do not cover what a clean answer needs";

#[derive(Parser)]
#[command(name = "exhunt", version, about = "Find evidence of ProxyLogon and its successors on Microsoft Exchange servers", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Show the built-in rules.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
}

#[derive(Subcommand)]
enum RulesAction {
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
enum OutFormat {
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
struct ScanArgs {
    /// Folders, files or .zip triage packages; each target is judged as one server.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
    /// Write the result to FILE instead of stdout (never inside a target).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only consider records at or after this UTC time (2021-03-01 or 2021-03-01T12:00:00Z).
    /// A bound that cuts the exposure window makes a clean answer inconclusive.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only consider records before this UTC time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Worker threads (default: one per CPU).
    #[arg(short = 'j', long, value_name = "N")]
    threads: Option<usize>,
    /// Print only the result (no progress, no warnings).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// List every finding and coverage problem; debug logging on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// No colours (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long)]
    no_color: bool,
    /// The Exchange install folder as it is on the server, when not the default
    /// (e.g. 'D:\Exchange Server\V15'); used to tell healthy OAB download paths.
    #[arg(long, value_name = "PATH")]
    exchange_path: Option<String>,
    /// Look at every file of the target (YARA, hashes, magic), not only web roots, memory
    /// dumps and archives in staging places.
    #[arg(long)]
    deep: bool,
    /// Also run the YARA rules in DIR (a folder, searched recursively, or a file), loaded as
    /// they are; rejected rules are reported. Repeatable. The folder itself is never scanned.
    #[arg(long, value_name = "DIR")]
    yara: Vec<PathBuf>,
    /// Also match file hashes from FILE: CSV, a STIX 2.1 bundle (.json) or a MISP feed folder.
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    ioc: Vec<PathBuf>,
    /// Also run the Sigma rules in DIR (a folder, searched recursively, or a file) on Windows
    /// events and IIS logs, loaded as they are (e.g. a SigmaHQ checkout); rules that cannot be
    /// loaded are listed with the reason. Repeatable. The folder itself is never scanned.
    #[arg(long, value_name = "DIR")]
    sigma: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("exhunt: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Scan(args) => scan(args),
        Command::Report(args) => report(args),
        Command::Probe(args) => probe::probe(args),
        Command::Collect(args) => collect::collect(args),
        Command::Rules { action } => rules(action),
    }
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Result files written by `exhunt scan --format json`.
    #[arg(required = true, value_name = "RESULT.json")]
    results: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
    /// Write the report to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Every finding and coverage problem.
    #[arg(short, long)]
    verbose: bool,
    /// No colours.
    #[arg(long)]
    no_color: bool,
}

/// Reads one saved result, refusing what this version cannot read faithfully.
fn load_result(path: &std::path::Path) -> Result<exhunt_model::ScanResult> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a complete JSON result (truncated or not written by `exhunt scan --format json`)",
            path.display()
        )
    })?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{} has no schema_version: not an exhunt result",
                path.display()
            )
        })?;
    let version = version.as_str();
    let ours = exhunt_model::SCHEMA_VERSION;
    let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
    if major(version) != major(ours) {
        bail!(
            "{} uses result schema {version}; this exhunt reads schema {}.x (its own is {ours})",
            path.display(),
            major(ours)
        );
    }
    let minor = |v: &str| {
        v.split('.')
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0)
    };
    if minor(version) > minor(ours) {
        eprintln!(
            "exhunt: {} was written with result schema {version}, newer than this exhunt's {ours}: fields added since are not shown",
            path.display()
        );
    }
    serde_json::from_value(value).with_context(|| {
        format!(
            "{} does not follow result schema {version} (edited, or written by another tool)",
            path.display()
        )
    })
}

fn report(args: ReportArgs) -> Result<u8> {
    let mut merged: Option<exhunt_model::ScanResult> = None;
    let mut seen: Vec<(String, String)> = Vec::new();
    for path in &args.results {
        let r = load_result(path)?;
        for s in &r.servers {
            if let Some((_, first)) = seen.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s.name)) {
                eprintln!(
                    "exhunt: server {} is in {first} and in {}: both results are kept, side by side (nothing is merged or dropped)",
                    s.name,
                    path.display()
                );
            }
            seen.push((s.name.clone(), path.display().to_string()));
        }
        merged = Some(match merged {
            None => r,
            Some(mut m) => {
                m.started = m.started.min(r.started);
                m.finished = m.finished.max(r.finished);
                m.servers.extend(r.servers);
                m
            }
        });
    }
    let Some(mut result) = merged else {
        bail!("no result given");
    };
    result.verdict = exhunt_model::VerdictKind::worst(result.servers.iter().map(|s| s.verdict));
    let format = args.format.into();
    let to_terminal = args.output.is_none() && io::stdout().is_terminal();
    let text = TextOptions {
        color: !args.no_color && std::env::var_os("NO_COLOR").is_none() && to_terminal,
        verbose: args.verbose,
    };
    write_result(&result, format, text, args.output.as_deref(), true)?;
    Ok(result.verdict.exit_code() as u8)
}

/// Renders to a file or to stdout (a closed pipe is not an error).
fn write_result(
    result: &exhunt_model::ScanResult,
    format: Format,
    text: TextOptions,
    output: Option<&std::path::Path>,
    quiet: bool,
) -> Result<()> {
    match output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = io::BufWriter::new(f);
            render(result, format, text, &mut w)
                .with_context(|| format!("writing {}", path.display()))?;
            w.flush()?;
            if !quiet {
                eprintln!(
                    "exhunt: {} — result written to {}",
                    result.verdict.label(),
                    path.display()
                );
            }
        }
        None => {
            let stdout = io::stdout();
            let mut w = io::BufWriter::new(stdout.lock());
            match render(result, format, text, &mut w).and_then(|_| w.flush()) {
                Ok(()) => {}
                // A closed pipe (`| head`) is not an error of the scan.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e).context("writing the result"),
            }
        }
    }
    Ok(())
}

fn rules(action: RulesAction) -> Result<u8> {
    if let RulesAction::Prefilters = action {
        let engine = Engine::new(ScanOptions::default()).context("loading the built-in rules")?;
        let mut out = io::stdout().lock();
        for (kind, lits) in engine.prefilter_literals() {
            for l in lits {
                writeln!(out, "{kind:?}\t{l}")?;
            }
        }
        return Ok(0);
    }
    let pack = exhunt_rules::RulePack::builtin().context("loading the built-in rules")?;
    let mut out = io::stdout().lock();
    match action {
        RulesAction::List => {
            for r in pack.rules() {
                writeln!(
                    out,
                    "{:<10} {:<10} {:<16} {}",
                    r.id,
                    r.spec,
                    r.cves.join(","),
                    r.title
                )?;
            }
        }
        RulesAction::Prefilters => {}
        RulesAction::Show { id } => {
            let Some(r) = pack.rule(&id) else {
                bail!("no rule with id {id} (see `exhunt rules list`)")
            };
            writeln!(out, "{}  {}\n", r.id, r.title)?;
            writeln!(out, "campaign:   {}", r.campaign.label())?;
            writeln!(out, "CVEs:       {}", r.cves.join(", "))?;
            writeln!(out, "ATT&CK:     {}", r.attack)?;
            writeln!(out, "severity:   {:?}", r.severity)?;
            writeln!(out, "stage:      {}", r.stage.label())?;
            writeln!(out, "spec:       {}\n", r.spec)?;
            writeln!(out, "{}\n", r.description)?;
            writeln!(out, "False positives: {}\n", r.false_positives)?;
            for x in &r.references {
                writeln!(out, "  - {x}")?;
            }
            if let Some((_, yaml)) = exhunt_rules::sigma::BUILTIN
                .iter()
                .find(|(i, _)| *i == r.id)
            {
                writeln!(out, "\nSigma rule (rules/sigma/{}.yml):\n\n{yaml}", r.id)?;
            }
        }
    }
    Ok(0)
}

fn parse_time(flag: &str, v: &Option<String>) -> Result<Option<exhunt_model::Timestamp>> {
    match v {
        None => Ok(None),
        Some(s) => exhunt_sources::time::parse_bound(s)
            .map(Some)
            .with_context(|| format!("{flag} {s:?}: expected a UTC date or date-time such as 2021-03-01 or 2021-03-01T12:00:00Z")),
    }
}

/// Refuses an output path inside a target: scanning never writes into evidence.
fn check_output(output: &Path, targets: &[PathBuf]) -> Result<()> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out_dir = parent
        .canonicalize()
        .with_context(|| format!("output folder {}", parent.display()))?;
    for t in targets {
        if let Ok(t) = t.canonicalize()
            && t.is_dir()
            && out_dir.starts_with(&t)
        {
            bail!(
                "refusing to write {} inside the evidence folder {}",
                output.display(),
                t.display()
            );
        }
    }
    Ok(())
}

fn scan(args: ScanArgs) -> Result<u8> {
    let level = if args.verbose {
        "debug"
    } else if args.quiet {
        "error"
    } else {
        "warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXHUNT_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_ansi(
            !args.no_color && std::env::var_os("NO_COLOR").is_none() && io::stderr().is_terminal(),
        )
        .try_init();

    let since = parse_time("--since", &args.since)?;
    let until = parse_time("--until", &args.until)?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    for t in &args.targets {
        if std::fs::symlink_metadata(t).is_err() {
            bail!("target {} does not exist or cannot be read", t.display());
        }
    }
    if let Some(o) = &args.output {
        check_output(o, &args.targets)?;
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("starting worker threads")?;
    }
    for p in args.yara.iter().chain(&args.ioc).chain(&args.sigma) {
        if std::fs::metadata(p).is_err() {
            bail!(
                "rule or IOC path {} does not exist or cannot be read",
                p.display()
            );
        }
    }
    let engine = Engine::new(ScanOptions {
        since,
        until,
        exchange_path: args.exchange_path.clone(),
        limits: Limits::default(),
        deep: args.deep,
        yara: args.yara.clone(),
        ioc: args.ioc.clone(),
        sigma: args.sigma.clone(),
    })
    .context("loading the built-in rules")?;

    if !args.quiet {
        // Only external YARA rules can be rejected (a test keeps the built-in pack clean), so
        // without --yara there is nothing to wait for: compilation goes on beside the walk.
        let info = if args.yara.is_empty() {
            engine.rules_info_loaded().clone()
        } else {
            engine.rules_info()
        };
        if !info.yara_rejected.is_empty() {
            eprintln!(
                "exhunt: {} YARA rule(s) or file(s) rejected (listed under rules.yara_rejected in --format json):",
                info.yara_rejected.len()
            );
            for r in info
                .yara_rejected
                .iter()
                .take(if args.verbose { usize::MAX } else { 10 })
            {
                eprintln!("  {}: {}", r.file, r.reason);
            }
        }
        if !args.sigma.is_empty() {
            eprintln!(
                "exhunt: {} Sigma rule(s) loaded ({} built-in), {} rule(s) or file(s) not loaded (listed under rules.sigma_rejected in --format json)",
                info.sigma_rules,
                exhunt_rules::sigma::BUILTIN.len(),
                info.sigma_rejected.len()
            );
            for r in info
                .sigma_rejected
                .iter()
                .take(if args.verbose { usize::MAX } else { 10 })
            {
                eprintln!("  {}: {}", r.file, r.reason);
            }
        }
        for f in &info.ioc_feeds {
            eprintln!(
                "exhunt: IOC feed {} ({}): {} file hashes loaded",
                f.path, f.format, f.hashes
            );
            for u in &f.unused {
                eprintln!("  not used: {u}");
            }
            for e in &f.errors {
                eprintln!("  error: {e}");
            }
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let bar = if !args.quiet && io::stderr().is_terminal() {
        Some(spawn_progress(engine.progress(), done.clone()))
    } else {
        None
    };
    let result = engine.scan(&args.targets);
    done.store(true, Ordering::Relaxed);
    if let Some(h) = bar {
        let _ = h.join();
    }

    let format = args.format.into();
    let to_terminal = args.output.is_none() && io::stdout().is_terminal();
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none() && to_terminal;
    let text = TextOptions {
        color,
        verbose: args.verbose,
    };
    write_result(&result, format, text, args.output.as_deref(), args.quiet)?;
    Ok(result.verdict.exit_code() as u8)
}

fn spawn_progress(
    p: Arc<exhunt_checks::Progress>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} files {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while !done.load(Ordering::Relaxed) {
            bar.set_length(p.files_total.load(Ordering::Relaxed));
            bar.set_position(p.files_done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} MiB read, {} findings",
                p.bytes_done.load(Ordering::Relaxed) >> 20,
                p.findings.load(Ordering::Relaxed)
            ));
            std::thread::sleep(Duration::from_millis(150));
        }
        bar.finish_and_clear();
    })
}
