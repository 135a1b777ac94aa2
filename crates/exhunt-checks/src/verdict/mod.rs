//! The verdict: one answer per campaign, and what it rests on.
//!
//! `compromised` needs a finding at a compromise stage (exploit success, persistence, web-shell
//! use) with at least medium confidence; `attempted` needs an exploitation attempt. Without
//! either, the answer is `no-evidence` only if every artefact kind the campaign's checks need was
//! present, read without losing evidence, and reaches back to the start of the exposure window;
//! otherwise it is `inconclusive`, with each missing piece named. A time filter that cuts the
//! window makes the answer inconclusive too. Scanner probes alone do not make a server "attempted":
//! administrators run the same checkers; they are reported and counted.
//!
//! The findings arrive graded and attributed by `correlate`. The reasons say how the attempts
//! ended (refused, or of unknown outcome: CSS-Exchange #312 asked for a visible "failed exploit"),
//! and when every build the logs show over the evidence's time already had the campaign's fix. A
//! request seen in IIS and HttpProxy logs is counted once.

use exhunt_model::{
    ArtefactKind, BuildSeen, Campaign, Confidence, Coverage, Finding, Outcome, Stage, Verdict,
    VerdictKind,
};

fn day(t: &exhunt_model::Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Judges each campaign. `fixed` tells whether a build has a campaign's fix (the fixed-build
/// table); each verdict carries the builds seen, judged for its own campaign.
pub fn judge(
    findings: &[Finding],
    coverage: &Coverage,
    builds: &[BuildSeen],
    fixed: &dyn Fn(Campaign, &str) -> Option<bool>,
    opts: &exhunt_model::ScanSettings,
) -> Vec<Verdict> {
    Campaign::ALL
        .iter()
        .map(|&c| {
            let mine: Vec<BuildSeen> = builds
                .iter()
                .map(|b| BuildSeen {
                    fixed: fixed(c, &b.build),
                    ..b.clone()
                })
                .collect();
            judge_one(c, findings, coverage, &mine, opts)
        })
        .collect()
}

/// Adds the emergency mitigations found configured to the reasons of the campaign they
/// mitigate. They do not change the verdict: a mitigation may have been applied after the
/// exploitation, and the early ones could be bypassed.
pub fn note_mitigations(verdicts: &mut [Verdict], mitigations: &[exhunt_model::Mitigation]) {
    for m in mitigations {
        if let Some(v) = verdicts.iter_mut().find(|v| v.campaign == m.campaign) {
            v.reasons.push(format!(
                "an emergency mitigation is configured: URL Rewrite rule \"{}\" ({}:{}; {}){}; it blocks new attempts, it says nothing about what happened before it was set",
                m.rule,
                m.path,
                m.line,
                m.matches,
                m.weakness
                    .as_deref()
                    .map(|w| format!(" — bypassable: {w}"))
                    .unwrap_or_default()
            ));
        }
    }
}

fn judge_one(
    campaign: Campaign,
    findings: &[Finding],
    coverage: &Coverage,
    builds: &[BuildSeen],
    opts: &exhunt_model::ScanSettings,
) -> Verdict {
    let window_start = campaign.window_start();
    let mine: Vec<&Finding> = findings.iter().filter(|f| f.campaign == campaign).collect();
    let compromise: Vec<&&Finding> = mine
        .iter()
        .filter(|f| f.stage.is_compromise() && f.confidence >= Confidence::Medium)
        .collect();
    let attempts: Vec<&&Finding> = mine
        .iter()
        .filter(|f| f.stage >= Stage::ExploitAttempt)
        .collect();
    let scans = mine.iter().filter(|f| f.stage == Stage::Scan).count();
    let first_evidence = attempts.iter().filter_map(|f| f.timestamp).min();
    let last_evidence = attempts.iter().filter_map(|f| f.timestamp).max();

    // Patch time: the first time a fixed build shows in the logs.
    let patched_at = builds
        .iter()
        .filter(|b| b.fixed == Some(true))
        .filter_map(|b| b.first_seen)
        .min();
    let unfixed_seen = builds.iter().any(|b| b.fixed == Some(false));
    let patched_before_first_evidence = match (first_evidence, patched_at) {
        (Some(e), Some(p)) if unfixed_seen || p <= e => Some(p <= e),
        (Some(_), None) if unfixed_seen => Some(false),
        _ => None,
    };
    let window_end = patched_at;
    // Builds and patch times speak of the logs' campaigns, not of files on disk.
    let log_campaign = campaign.required_kinds().iter().any(|k| k.is_log());
    let patched_before_first_evidence = if log_campaign {
        patched_before_first_evidence
    } else {
        None
    };
    let (window_end, patched_at) = if log_campaign {
        (window_end, patched_at)
    } else {
        (None, None)
    };

    let mut reasons = Vec::new();
    // Coverage gaps: always computed, they qualify every answer.
    let mut gaps = Vec::new();
    for &kind in campaign.required_kinds() {
        match coverage.kind(kind) {
            None if !kind.is_log() => gaps.push(format!(
                "no {kind} found (no inetpub\\wwwroot, aspnet_client or FrontEnd\\HttpProxy\\owa\\auth folder in the target): files on disk were not checked"
            )),
            None => gaps.push(format!("no {kind} found: its checks could not run")),
            Some(kc) if !kind.is_log() => {
                if kc.files_complete < kc.files {
                    gaps.push(format!(
                        "{} of {} {kind} could not be read completely (see coverage problems)",
                        kc.files - kc.files_complete,
                        kc.files
                    ));
                }
            }
            Some(kc) => {
                if kc.files_complete < kc.files {
                    gaps.push(format!(
                        "{} of {} {kind} file(s) could not be read completely (see coverage problems)",
                        kc.files - kc.files_complete,
                        kc.files
                    ));
                }
                match kc.first {
                    None => gaps.push(format!("{kind}: no dated record found")),
                    Some(first) if first > window_start => gaps.push(format!(
                        "{kind} start on {}, after the exposure window opened on {}",
                        day(&first),
                        day(&window_start)
                    )),
                    Some(_) => {}
                }
                if let Some(last) = kc.last
                    && last < window_start
                {
                    gaps.push(format!(
                        "{kind} end on {}, before the exposure window opened on {}: they cannot show this campaign",
                        day(&last),
                        day(&window_start)
                    ));
                }
                if let (Some(end), Some(last)) = (window_end, kc.last)
                    && last < end
                {
                    gaps.push(format!(
                        "{kind} end on {}, before the server was patched ({})",
                        day(&last),
                        day(&end)
                    ));
                }
            }
        }
    }
    // Event logs are optional evidence (many collections have none), but one that is there
    // and cannot be read may hide the event side of the chain.
    let mut notes = Vec::new();
    let event_kinds = [ArtefactKind::Evtx, ArtefactKind::EventExport];
    for kc in event_kinds.iter().filter_map(|k| coverage.kind(*k)) {
        if kc.files_complete < kc.files {
            gaps.push(format!(
                "{} of {} {} file(s) could not be read completely (see coverage problems)",
                kc.files - kc.files_complete,
                kc.files,
                kc.kind
            ));
        }
    }
    if event_kinds.iter().all(|k| coverage.kind(*k).is_none()) {
        notes.push(
            "no Windows event logs or event exports in the target: the event checks (EXH-EV-*) did not run"
                .to_string(),
        );
    }
    let lost_elsewhere = coverage
        .problems
        .iter()
        .filter(|p| p.evidence_lost && p.kind.is_none())
        .count();
    if lost_elsewhere > 0 {
        gaps.push(format!(
            "{lost_elsewhere} file(s) or folder(s) could not be read (see coverage problems)"
        ));
    }
    if let Some(since) = opts.since
        && log_campaign
        && since > window_start
    {
        gaps.push(format!(
            "--since {} cuts the exposure window, which opened on {}",
            day(&since),
            day(&window_start)
        ));
    }
    if let Some(until) = opts.until
        && log_campaign
        && window_end.is_none_or(|e| until < e)
    {
        gaps.push(format!(
            "--until {} ends the scan before the exposure window closed",
            day(&until)
        ));
    }

    let (verdict, summary) = if !compromise.is_empty() {
        let top = compromise
            .iter()
            .max_by_key(|f| f.stage)
            .map(|f| f.stage)
            .unwrap_or(Stage::ExploitSuccess);
        reasons.push(format!(
            "{} finding(s) show the attack succeeded; the furthest stage reached is {}",
            distinct(&compromise.iter().map(|f| **f).collect::<Vec<_>>()),
            top.label()
        ));
        (
            VerdictKind::Compromised,
            format!(
                "COMPROMISED: {} reached {} (first evidence {})",
                campaign.label(),
                top.label(),
                first_evidence.map_or("undated".into(), |t| t
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string())
            ),
        )
    } else if !attempts.is_empty() {
        let first = first_evidence.map_or("undated".into(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        });
        // Findings past the exploit stage with low confidence are things an administrator
        // also does (a transport agent installed, a role group changed): signs to review, not
        // an exploitation attempt.
        let review = attempts
            .iter()
            .filter(|f| f.stage > Stage::ExploitAttempt && f.confidence < Confidence::Medium)
            .count();
        if review == attempts.len() {
            reasons.push(format!(
                "{review} low-confidence finding(s) an administrator's work can also explain: review them"
            ));
            (
                VerdictKind::Attempted,
                format!(
                    "REVIEW: {} signs to check (first {first}); nothing confirms a compromise",
                    campaign.label()
                ),
            )
        } else {
            reasons.push(format!(
                "{} exploitation attempt(s), no evidence that one succeeded",
                distinct(&attempts.iter().map(|f| **f).collect::<Vec<_>>())
            ));
            (
                VerdictKind::Attempted,
                format!(
                    "ATTEMPTED: {} exploitation was tried (first {first}), no sign it succeeded",
                    campaign.label()
                ),
            )
        }
    } else if gaps.is_empty() && !log_campaign {
        let files = campaign
            .required_kinds()
            .iter()
            .filter_map(|k| coverage.kind(*k))
            .map(|k| k.files)
            .sum::<u64>();
        (
            VerdictKind::NoEvidence,
            format!("NO EVIDENCE of web shells or dumps in {files} web-root file(s) checked"),
        )
    } else if gaps.is_empty() {
        (
            VerdictKind::NoEvidence,
            match window_end {
                Some(e) if e < window_start => format!(
                    "NO EVIDENCE of {}: the server ran a fixed build from {}, before the campaign began ({}), and the logs cover that time",
                    campaign.label(),
                    day(&e),
                    day(&window_start)
                ),
                _ => format!(
                    "NO EVIDENCE of {} in logs covering {} onwards{}",
                    campaign.label(),
                    day(&window_start),
                    window_end.map_or(String::new(), |e| format!(
                        " until the server was patched ({})",
                        day(&e)
                    ))
                ),
            },
        )
    } else {
        (
            VerdictKind::Inconclusive,
            if log_campaign {
                format!(
                    "INCONCLUSIVE: no evidence of {} found, but the logs do not cover the exposure window",
                    campaign.label()
                )
            } else {
                "INCONCLUSIVE: no web shell found, but the web roots were not (all) read"
                    .to_string()
            },
        )
    };
    if let Some(r) = outcome_reason(&mine) {
        reasons.push(r);
    }
    if log_campaign
        && !attempts.is_empty()
        && let Some(r) = build_reason(campaign, builds, first_evidence, last_evidence)
    {
        reasons.push(r);
    }
    if scans > 0 {
        reasons.push(if log_campaign {
            format!("{scans} vulnerability scanner probe(s) seen (not exploitation)")
        } else {
            format!("{scans} request(s) probing for published web-shell paths (not exploitation)")
        });
    }
    if verdict == VerdictKind::Inconclusive && !unfixed_seen && patched_at.is_some() {
        reasons.push(
            "the logs show only patched builds: whether the server was vulnerable before they start cannot be told from them"
                .into(),
        );
    }
    if verdict == VerdictKind::NoEvidence && window_end.is_none() && log_campaign {
        reasons.push(
            "no patched build seen in the logs: exposure may continue after the last log line"
                .into(),
        );
    }
    for n in notes {
        reasons.push(format!("coverage: {n}"));
    }
    for g in gaps {
        reasons.push(if verdict == VerdictKind::Inconclusive {
            g
        } else {
            format!("coverage: {g}")
        });
    }
    Verdict {
        campaign,
        verdict,
        summary,
        reasons,
        window_start,
        window_end,
        first_evidence,
        last_evidence,
        builds_seen: builds.to_vec(),
        patched_before_first_evidence,
    }
}

/// How the attempts ended: refused by the server, or of unknown outcome (issue 13, CSS-Exchange
/// #312: a failed exploit must look different from one the logs cannot judge).
fn outcome_reason(mine: &[&Finding]) -> Option<String> {
    let with = |o: Outcome| -> Vec<&Finding> {
        mine.iter()
            .copied()
            .filter(|f| f.stage == Stage::ExploitAttempt && f.outcome == Some(o))
            .collect()
    };
    let refused = distinct(&with(Outcome::Refused));
    let unknown = distinct(&with(Outcome::Unknown));
    let mut parts = Vec::new();
    if refused > 0 {
        parts.push(format!(
            "{refused} attempt(s) failed: the server refused them, the back end shows the failure, or the build was not vulnerable"
        ));
    }
    if unknown > 0 {
        parts.push(format!(
            "{unknown} attempt(s) of unknown outcome: the logs cannot tell whether they worked"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// When every build the logs show over the evidence's time already had the campaign's fix:
/// the requests could not have worked, whatever they look like.
fn build_reason(
    campaign: Campaign,
    builds: &[BuildSeen],
    first: Option<exhunt_model::Timestamp>,
    last: Option<exhunt_model::Timestamp>,
) -> Option<String> {
    let (first, last) = (first?, last?);
    // The build in effect at the first evidence, and every build first seen until the last.
    let at_start = builds
        .iter()
        .filter(|b| b.first_seen.is_some_and(|s| s <= first))
        .max_by_key(|b| b.first_seen)?;
    let mut during: Vec<&BuildSeen> = vec![at_start];
    during.extend(
        builds
            .iter()
            .filter(|b| b.first_seen.is_some_and(|s| s > first && s <= last)),
    );
    if !during.iter().all(|b| b.fixed == Some(true)) {
        return None;
    }
    let names: Vec<&str> = during.iter().map(|b| b.build.as_str()).collect();
    Some(format!(
        "build {} was not vulnerable to {}: its request shapes count as attempts at most",
        names.join(", "),
        campaign.label()
    ))
}

/// Findings counted once per event: a finding that joins another finding of the list at the
/// same stage (the IIS line of a request whose HttpProxy line is there, the event of an ECP
/// change whose log line is there) is the same request or change.
fn distinct(list: &[&Finding]) -> usize {
    list.iter()
        .filter(|f| {
            f.joins.as_deref().is_none_or(|j| {
                !list
                    .iter()
                    .any(|g| g.rule_id == j && g.stage == f.stage && g.joins.is_none())
            })
        })
        .count()
}

#[cfg(test)]
mod tests;
