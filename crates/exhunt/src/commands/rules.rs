//! `exhunt rules`: the built-in catalogue, for people and for the benchmark scripts.

use std::io::{self, Write};

use anyhow::{Context, Result, bail};
use exhunt_checks::{Engine, ScanOptions};

use crate::cli::RulesAction;

pub(crate) fn rules(action: RulesAction) -> Result<u8> {
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
