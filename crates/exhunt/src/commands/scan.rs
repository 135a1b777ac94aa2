//! `exhunt scan`: options checked, the engine built and run, the result written.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use exhunt_checks::{Engine, ScanOptions};
use exhunt_sources::Limits;

use crate::cli::{ScanArgs, parse_time};
use crate::output::{color, spawn_progress, text_options, write_result};
use crate::upload::{UPLOAD_FAILED, Uploader};

/// Refuses an output path inside a target: scanning never writes into evidence.
pub(crate) fn check_output(output: &Path, targets: &[PathBuf]) -> Result<()> {
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

pub(crate) fn scan(args: ScanArgs) -> Result<u8> {
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
        .with_ansi(color(args.no_color, io::stderr().is_terminal()))
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
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    for p in args.yara.iter().chain(&args.ioc).chain(&args.sigma) {
        if std::fs::metadata(p).is_err() {
            bail!(
                "rule or IOC path {} does not exist or cannot be read",
                p.display()
            );
        }
    }
    // Checked before the scan: a bad URL or a missing token must not surface hours later.
    let uploader = Uploader::from_args(&args.upload)?;
    if let Some(up) = &uploader
        && !args.quiet
    {
        up.preflight("scan", true);
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
        threads: args.threads,
    })
    .context("starting the scan engine")?;

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

    let text = text_options(args.no_color, args.verbose, args.output.is_some());
    write_result(
        &result,
        args.format.into(),
        text,
        args.output.as_deref(),
        args.quiet,
    )?;
    let mut code = result.verdict.exit_code() as u8;
    // After the local output, which an upload never changes nor delays.
    if let Some(up) = uploader
        && !up.upload_scan(&result, args.quiet)
    {
        code += UPLOAD_FAILED;
    }
    Ok(code)
}
