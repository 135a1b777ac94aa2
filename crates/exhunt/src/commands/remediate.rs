//! `exhunt remediate`: plan, apply, rollback, verify (crate `exhunt-remediate`). The command line
//! reads and writes files; the plan itself is made from the result alone, with the SHA-256 of
//! each file to quarantine measured here when the file can be found.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use exhunt_checks::{Engine, ScanOptions};
use exhunt_remediate::apply::{ApplyOptions, Preservation, locate, measure};
use exhunt_remediate::plan::{PLAN_SCHEMA, Plan, files_named};
use exhunt_report::safe::terminal;
use exhunt_sources::Limits;

pub(crate) const REMEDIATE_EXIT_CODES: &str = "\
Exit codes:
  0  done: plan written; apply or rollback carried out (without --yes: shown);
     verify: nothing remains and nothing is new
  1  verify: something the earlier result found remains, something new was found, or
     a file the rescan no longer flags is still on disk
  2  error or refusal: bad arguments, evidence not preserved, a vault that does not
     match its journal; verify: a rescan of other servers, or the earlier scan's rule
     files not readable
  3  partial: apply left some planned files alone (listed: not found, changed since
     the plan, no SHA-256 in the plan); rollback left some files alone (listed: a file
     changed at their path since apply is never overwritten) and restored the rest";

#[derive(Args)]
pub(crate) struct RemediateArgs {
    #[command(subcommand)]
    action: RemediateAction,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    /// For people: actions, why, findings, PowerShell.
    Text,
    /// The plan `apply` reads.
    Json,
    /// One self-contained HTML page.
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum VerifyFormat {
    /// Counts, then one line per file: cleaned, REMAINS, NEW.
    Text,
    /// The comparison as one JSON document.
    Json,
}

#[derive(Subcommand)]
enum RemediateAction {
    /// Make a plan from a saved result (`scan --format json`): files to quarantine, configuration
    /// to restore (PowerShell), credentials to reset, the update to install, the ED 21-02
    /// checklist; each action cites its findings.
    Plan {
        /// The result file.
        #[arg(value_name = "RESULT.json")]
        result: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
        /// Write the plan to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Where the scan target is now, when not at the path the result names: files are
        /// looked up here to record their SHA-256 in the plan.
        #[arg(long, value_name = "DIR")]
        target: Option<PathBuf>,
    },
    /// Carry out the plan's quarantine actions: copy each file into the vault, verify the copy,
    /// then remove the original (or stub it). Dry run unless --yes.
    Apply {
        /// The plan (`remediate plan --format json`).
        #[arg(value_name = "PLAN.json")]
        plan: PathBuf,
        /// The vault folder: copies, manifest.json and journal.jsonl (never inside the target).
        #[arg(long, value_name = "DIR")]
        vault: PathBuf,
        /// Where the scan target is now (files are found by their path relative to it).
        #[arg(long, value_name = "DIR")]
        target: Option<PathBuf>,
        /// The package `exhunt collect` made of this server; it must verify.
        #[arg(long, value_name = "PACKAGE.zip", conflicts_with = "no_preserve")]
        evidence: Option<PathBuf>,
        /// Go on without a package, for REASON (recorded in the journal).
        #[arg(long, value_name = "REASON")]
        no_preserve: Option<String>,
        /// Replace each file with an inert stub instead of removing it.
        #[arg(long)]
        stub: bool,
        /// Also quarantine files the plan has no SHA-256 for (whatever file is at the path
        /// now). Without it they are left alone: plan again where the files can be read.
        #[arg(long)]
        allow_unpinned: bool,
        /// Act (without it, only say what would be done).
        #[arg(long)]
        yes: bool,
    },
    /// Restore every file apply quarantined, byte for byte with its times, from the journal
    /// and its vault; refuses when a vault copy does not match; a file changed at its path
    /// since apply is left alone and listed (exit 3). Dry run unless --yes.
    Rollback {
        /// The journal (VAULT/journal.jsonl).
        #[arg(value_name = "JOURNAL")]
        journal: PathBuf,
        /// Act.
        #[arg(long)]
        yes: bool,
    },
    /// Rescan TARGET and compare with the earlier result: what was cleaned, what remains,
    /// what is new.
    Verify {
        /// The earlier result.
        #[arg(value_name = "RESULT.json")]
        result: PathBuf,
        /// The server (or its copy) to rescan.
        #[arg(value_name = "TARGET")]
        target: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: VerifyFormat,
        /// Look at every file of the target (the result does not record whether the earlier
        /// scan did: give it if that scan had --deep).
        #[arg(long)]
        deep: bool,
        /// YARA rules for the rescan; without it, the files the earlier result names.
        #[arg(long, value_name = "FILE")]
        yara: Vec<PathBuf>,
        /// Hash IOC feeds for the rescan; without it, the feeds the earlier result names.
        #[arg(long, value_name = "FILE")]
        ioc: Vec<PathBuf>,
        /// Sigma rules for the rescan; without it, the files the earlier result names.
        #[arg(long, value_name = "FILE")]
        sigma: Vec<PathBuf>,
    },
}

pub(crate) fn remediate(args: RemediateArgs) -> Result<u8> {
    match args.action {
        RemediateAction::Plan {
            result,
            format,
            output,
            target,
        } => plan(&result, format, output.as_deref(), target.as_deref()),
        RemediateAction::Apply {
            plan,
            vault,
            target,
            evidence,
            no_preserve,
            stub,
            allow_unpinned,
            yes,
        } => {
            let preservation = match (evidence, no_preserve) {
                (Some(p), _) => Preservation::Package(p),
                (None, Some(r)) => Preservation::NoPreserve(r),
                (None, None) => Preservation::None,
            };
            // Crash injection for the tests: never in a release build.
            #[cfg(debug_assertions)]
            let fail_after = std::env::var("EXHUNT_REMEDIATE_FAIL_AFTER")
                .ok()
                .and_then(|v| v.parse().ok());
            #[cfg(not(debug_assertions))]
            let fail_after = None;
            apply(
                &plan,
                ApplyOptions {
                    vault,
                    target,
                    preservation,
                    stub,
                    yes,
                    allow_unpinned,
                    fail_after,
                },
            )
        }
        RemediateAction::Rollback { journal, yes } => rollback(&journal, yes),
        RemediateAction::Verify {
            result,
            target,
            format,
            deep,
            yara,
            ioc,
            sigma,
        } => verify(&result, &target, format, deep, [yara, ioc, sigma]),
    }
}

fn load_result(path: &Path) -> Result<exhunt_model::ScanResult> {
    let (result, warnings) =
        exhunt_report::saved::load(path).with_context(|| format!("reading {}", path.display()))?;
    for w in warnings {
        eprintln!("exhunt: warning: {}", terminal(&w));
    }
    Ok(result)
}

fn plan(
    result: &Path,
    format: PlanFormat,
    output: Option<&Path>,
    target: Option<&Path>,
) -> Result<u8> {
    let r = load_result(result)?;
    let builds = exhunt_rules::builds::BuildTable::builtin().context("loading the build table")?;
    // First without facts, to learn where each file is relative to its scan target.
    let draft = exhunt_remediate::plan(&r, &builds, &BTreeMap::new());
    let named = files_named(&r);
    let mut facts = BTreeMap::new();
    for sp in &draft.servers {
        for f in sp.actions.iter().filter_map(|a| a.file.as_ref()) {
            if !named.contains(&f.path) {
                continue;
            }
            if let Ok(p) = locate(&f.path, f.relative.as_deref(), target)
                && let Ok(m) = measure(&p)
            {
                facts.insert(f.path.clone(), m);
            }
        }
    }
    let p = exhunt_remediate::plan(&r, &builds, &facts);
    let text = match format {
        PlanFormat::Text => exhunt_remediate::render::text(&p),
        PlanFormat::Json => exhunt_remediate::render::json(&p),
        PlanFormat::Html => exhunt_remediate::render::html(&p),
    };
    match output {
        Some(o) => {
            // Never into the evidence: the result's targets, as the scan named them.
            let targets: Vec<PathBuf> = r
                .servers
                .iter()
                .flat_map(|s| s.targets.iter().map(PathBuf::from))
                .collect();
            crate::commands::scan::check_output(o, &targets)?;
            std::fs::write(o, text).with_context(|| format!("writing {}", o.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(0)
}

fn apply(plan_path: &Path, opts: ApplyOptions) -> Result<u8> {
    let text = std::fs::read_to_string(plan_path)
        .with_context(|| format!("reading {}", plan_path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan (`exhunt remediate plan --format json`)",
            plan_path.display()
        )
    })?;
    if plan.schema != PLAN_SCHEMA {
        bail!(
            "{}: plan format {:?}, this exhunt reads {PLAN_SCHEMA}",
            plan_path.display(),
            plan.schema
        );
    }
    let yes = opts.yes;
    let r = exhunt_remediate::apply(&plan, &opts)?;
    eprintln!("exhunt: evidence: {}", terminal(&r.preservation));
    for l in &r.lines {
        println!("{}", terminal(l));
    }
    for s in &r.skipped {
        eprintln!("exhunt: left alone: {}", terminal(s));
    }
    if yes {
        eprintln!(
            "exhunt: {} file(s) quarantined; journal {} (roll back with `exhunt remediate rollback {} --yes`)",
            r.quarantined,
            r.journal
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            r.journal
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
    } else {
        eprintln!("exhunt: dry run: nothing was changed; add --yes to act");
    }
    Ok(if r.skipped.is_empty() { 0 } else { 3 })
}

fn rollback(journal: &Path, yes: bool) -> Result<u8> {
    let r = exhunt_remediate::rollback(journal, yes)?;
    for p in &r.restored {
        println!(
            "{} {}",
            if yes { "restored" } else { "would restore" },
            terminal(p)
        );
    }
    for p in &r.in_place {
        println!("in place, untouched: {}", terminal(p));
    }
    for n in &r.notes {
        eprintln!("exhunt: note: {}", terminal(n));
    }
    for s in &r.skipped {
        eprintln!("exhunt: left alone: {}", terminal(s));
    }
    if !yes {
        eprintln!("exhunt: dry run: nothing was changed; add --yes to act");
    }
    if !r.skipped.is_empty() {
        eprintln!(
            "exhunt: rollback partial: {} file(s) left alone (listed above); the rest {}",
            r.skipped.len(),
            if yes { "restored" } else { "would be restored" }
        );
        return Ok(3);
    }
    Ok(0)
}

fn verify(
    result: &Path,
    target: &Path,
    format: VerifyFormat,
    deep: bool,
    [yara, ioc, sigma]: [Vec<PathBuf>; 3],
) -> Result<u8> {
    let before = load_result(result)?;
    if std::fs::symlink_metadata(target).is_err() {
        bail!(
            "target {} does not exist or cannot be read",
            target.display()
        );
    }
    // The rescan looks with the earlier scan's rule files, or what it finds "cleaned" may only
    // be what it did not look for.
    let recorded = |given: Vec<PathBuf>, named: Vec<String>, what: &str| -> Result<Vec<PathBuf>> {
        if !given.is_empty() {
            return Ok(given);
        }
        let named: Vec<PathBuf> = named.into_iter().map(PathBuf::from).collect();
        if let Some(p) = named.iter().find(|p| !p.is_file()) {
            bail!(
                "the earlier scan used the {what} file {}, which cannot be read here: pass the same rules with --{what} (nothing compared)",
                p.display()
            );
        }
        Ok(named)
    };
    let yara = recorded(yara, before.rules.yara_files.clone(), "yara")?;
    let ioc = recorded(
        ioc,
        before
            .rules
            .ioc_feeds
            .iter()
            .map(|f| f.path.clone())
            .collect(),
        "ioc",
    )?;
    let sigma = recorded(sigma, before.rules.sigma_files.clone(), "sigma")?;
    let engine = Engine::new(ScanOptions {
        since: None,
        until: None,
        exchange_path: before.settings.exchange_path.clone(),
        limits: Limits::default(),
        deep,
        yara,
        ioc,
        sigma,
        threads: None,
    })
    .context("starting the scan engine")?;
    let after = engine.scan(&[target.to_path_buf()]);
    if let Err(why) = exhunt_remediate::verify::check_servers(&before, &after) {
        bail!("{why}");
    }
    let mut c = exhunt_remediate::compare(&before, &after);
    exhunt_remediate::verify::confirm_cleaned(&mut c, target);
    match format {
        VerifyFormat::Json => {
            let s = serde_json::to_string_pretty(&c)?;
            println!("{}", exhunt_report::safe::json_text(&s));
        }
        VerifyFormat::Text => {
            println!(
                "exhunt remediate verify: {} cleaned, {} remain, {} new, {} unconfirmed (rescan verdict {}; {} findings from logs are history and not compared)",
                c.cleaned.len(),
                c.remains.len(),
                c.new.len(),
                c.unconfirmed.len(),
                after.verdict.label(),
                c.history
            );
            for (label, list) in [
                ("cleaned", &c.cleaned),
                ("REMAINS", &c.remains),
                ("NEW", &c.new),
                ("STILL ON DISK", &c.unconfirmed),
            ] {
                for e in list {
                    println!(
                        "  {label:8} {} {} {}",
                        terminal(&e.server),
                        terminal(&e.rule_id),
                        terminal(&e.path)
                    );
                }
            }
        }
    }
    Ok(if c.clean() { 0 } else { 1 })
}
