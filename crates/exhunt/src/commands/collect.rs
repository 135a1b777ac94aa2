//! `exhunt collect`: the command line of the triage package (crate `exhunt-collect`): options,
//! a progress bar on a terminal, the summary at the end, and `--verify`.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use exhunt_collect::{CollectOptions, Progress};
use exhunt_report::safe::terminal;

pub(crate) const COLLECT_EXIT_CODES: &str = "\
Exit codes:
  0  complete: every selected file is in the package (or --verify: everything matches)
  2  error: bad arguments, the package cannot be written (or --verify: a hash differs)
  3  incomplete: some evidence could not be read or did not fit (listed in the manifest)";

#[derive(Args)]
pub(crate) struct CollectArgs {
    /// A mounted image or a folder laid out like C:\ (default: the live system, on Windows).
    #[arg(value_name = "TARGET", conflicts_with = "verify")]
    target: Option<PathBuf>,
    /// The package to write (a .zip; never inside the target; its SHA-256 goes beside it in
    /// PACKAGE.zip.sha256).
    #[arg(
        short,
        long,
        value_name = "PACKAGE.zip",
        required_unless_present = "verify"
    )]
    output: Option<PathBuf>,
    /// Check a package: every file against the manifest's SHA-256, and the package against
    /// PACKAGE.zip.sha256.
    #[arg(long, value_name = "PACKAGE.zip")]
    verify: Option<PathBuf>,
    /// Skip logs last written before this UTC time (2021-01-01 or 2021-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Bound the package: at most SIZE bytes of file content (500M, 4G, 1T); what does not fit
    /// is listed (configurations and scripts first, then event logs, Exchange logs, IIS logs,
    /// other logs, dumps and archives; newest first).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Memory dumps and archives larger than SIZE are recorded by metadata only (path, size,
    /// times, SHA-256).
    #[arg(long, value_name = "SIZE", default_value = "2G")]
    max_dump_size: String,
    /// Also collect the message tracking logs (large; about mail, not web requests).
    #[arg(long)]
    message_tracking: bool,
    /// Deflate level, 1 (fast, the default) to 9 (smallest).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=9))]
    level: i64,
    /// Print only errors and the package hash.
    #[arg(short, long)]
    quiet: bool,
}

/// `500M`, `4G`, `1T`, `123` (bytes).
fn parse_size(flag: &str, s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => bail!("{flag} {s:?}: expected a size such as 500M, 4G or 1T"),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .with_context(|| format!("{flag} {s:?}: expected a size such as 500M, 4G or 1T"))?;
    Ok((n * mult as f64) as u64)
}

pub(crate) fn collect(args: CollectArgs) -> Result<u8> {
    if let Some(p) = &args.verify {
        return verify(p, args.quiet);
    }
    let Some(output) = args.output.clone() else {
        bail!("--output PACKAGE.zip is required");
    };
    let since = crate::cli::parse_time("--since", &args.since)?;
    let mut opts = CollectOptions::new(args.target.clone(), output);
    opts.since = since;
    opts.max_size = args
        .max_size
        .as_deref()
        .map(|s| parse_size("--max-size", s))
        .transpose()?;
    opts.max_dump_size = parse_size("--max-dump-size", &args.max_dump_size)?;
    opts.message_tracking = args.message_tracking;
    opts.level = args.level;

    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let bar = (!args.quiet && io::stderr().is_terminal())
        .then(|| spawn_progress(progress.clone(), done.clone()));
    let result = exhunt_collect::collect(&opts, &progress);
    done.store(true, Ordering::Relaxed);
    if let Some(h) = bar {
        let _ = h.join();
    }
    let s = result?;
    let lost: Vec<_> = s.not_collected.iter().filter(|n| n.evidence_lost).collect();
    let left: Vec<_> = s
        .not_collected
        .iter()
        .filter(|n| !n.evidence_lost)
        .collect();
    if !args.quiet {
        eprintln!(
            "exhunt: collected {} files ({} MiB) of {} seen into {} ({} MiB); {} recorded by metadata only",
            s.files,
            s.bytes >> 20,
            s.files_seen,
            s.package.display(),
            s.package_bytes >> 20,
            s.metadata_only
        );
        if !lost.is_empty() {
            eprintln!(
                "exhunt: {} file(s) missing from the package (listed in the manifest's not_collected):",
                lost.len()
            );
            for n in lost.iter().take(20) {
                // Paths and reasons come from the evidence: shown, never obeyed.
                eprintln!(
                    "  {} ({}): {}",
                    terminal(&n.original),
                    n.what,
                    terminal(&n.reason)
                );
            }
            if lost.len() > 20 {
                eprintln!("  … and {} more", lost.len() - 20);
            }
        }
        if !left.is_empty() {
            eprintln!(
                "exhunt: {} file(s) left out on purpose (--since, links not followed, not regular files)",
                left.len()
            );
        }
    }
    println!(
        "{}  {}",
        s.package_sha256,
        s.package
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    if !args.quiet {
        eprintln!(
            "exhunt: package SHA-256 written to {}; {}",
            exhunt_collect::sha256_path(&s.package).display(),
            if s.complete() {
                "complete"
            } else {
                "INCOMPLETE: some evidence is not in the package"
            }
        );
    }
    Ok(if s.complete() { 0 } else { 3 })
}

fn verify(package: &std::path::Path, quiet: bool) -> Result<u8> {
    let r = exhunt_collect::verify(package)?;
    for m in &r.mismatches {
        eprintln!("exhunt: MISMATCH {}", terminal(&m.to_string()));
    }
    if !quiet {
        eprintln!(
            "exhunt: {} files, {} MiB checked; package SHA-256 {} ({})",
            r.files,
            r.bytes >> 20,
            r.package_sha256,
            match r.package_hash_ok {
                Some(true) => "matches the .sha256 beside it",
                Some(false) => "DIFFERS from the .sha256 beside it",
                None => "no .sha256 beside it to compare with",
            }
        );
    }
    if r.ok() {
        if !quiet {
            eprintln!("exhunt: package verified");
        }
        Ok(0)
    } else {
        eprintln!(
            "exhunt: package does NOT verify: {} difference(s)",
            r.mismatches.len()
        );
        Ok(2)
    }
}

fn spawn_progress(p: Arc<Progress>, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = crate::output::bar("{bytes}/{total_bytes}");
        while !done.load(Ordering::Relaxed) {
            let total = p.files_total.load(Ordering::Relaxed);
            bar.set_length(p.bytes_total.load(Ordering::Relaxed));
            bar.set_position(p.bytes_done.load(Ordering::Relaxed));
            bar.set_message(if total == 0 {
                "selecting files".to_string()
            } else {
                format!("{}/{total} files", p.files_done.load(Ordering::Relaxed))
            });
            std::thread::sleep(Duration::from_millis(150));
        }
        bar.finish_and_clear();
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("x", "1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("x", "123").unwrap(), 123);
        assert!(parse_size("x", "12Q").is_err());
        assert!(parse_size("x", "-1").is_err());
    }
}
