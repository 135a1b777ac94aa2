//! The attack story: findings joined into steps a person reads in time order.
//!
//! A step is one rule at one stage: "the SSRF reached the back end 14 times from 2 addresses",
//! "the OAB ExternalUrl was set to script", "the written shell answered 200". The chain is joined
//! by the written path: the reset or download that wrote a file, and the requests for the URL of
//! that file found by the second pass, name the same path. The same change seen in two artefacts
//! (the ExternalUrl set to script in the ECP log and in the MSExchange Management event log) is one
//! step: the event rule's catalogue entry names the step it joins.

use std::collections::BTreeMap;

use exhunt_model::{Finding, Outcome, Stage, StoryStep};

fn distinct<'a>(it: impl Iterator<Item = &'a str>, max: usize) -> (Vec<String>, usize) {
    let mut v: Vec<String> = Vec::new();
    for s in it {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    let n = v.len();
    v.truncate(max);
    (v, n)
}

fn list(v: &(Vec<String>, usize)) -> String {
    let more = v.1.saturating_sub(v.0.len());
    if more > 0 {
        format!("{} and {more} more", v.0.join(", "))
    } else {
        v.0.join(", ")
    }
}

/// Builds the story from findings sorted by time.
pub fn build(findings: &[Finding]) -> Vec<StoryStep> {
    // URLs of the files the logs say the chain wrote, with the time of the write: a file found on
    // disk at that URL is the same story.
    let mut written: Vec<(String, Option<exhunt_model::Timestamp>)> = Vec::new();
    for f in findings {
        if let Some(u) = crate::webshell::written_url(f) {
            written.push((u.to_ascii_lowercase(), f.timestamp));
        }
    }
    let mut groups: BTreeMap<(Stage, String, Option<Outcome>), Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        // A finding that joins another rule's step (the same change seen in another artefact,
        // the same request seen in IIS and HttpProxy logs) is grouped with it. Refused attempts
        // and attempts of unknown outcome are separate steps: they mean different things.
        groups
            .entry((
                f.stage,
                f.joins.clone().unwrap_or_else(|| f.rule_id.clone()),
                f.outcome,
            ))
            .or_default()
            .push(i);
    }
    let mut steps: Vec<StoryStep> =
        groups
            .into_iter()
            .map(|((stage, _, outcome), idx)| {
                let fs: Vec<&Finding> = idx.iter().map(|&i| &findings[i]).collect();
                let start = fs.iter().filter_map(|f| f.timestamp).min();
                let end = fs.iter().filter_map(|f| f.timestamp).max();
                let ips = distinct(fs.iter().filter_map(|f| f.entities.client_ip.as_deref()), 3);
                // Told from the finding the others join (the HttpProxy line of a request, the ECP
                // log line of a change), when there is one.
                let lead = fs.iter().position(|f| f.joins.is_none()).unwrap_or(0);
                let mut summary = if fs.len() == 1 {
                    fs[0].title.clone()
                } else {
                    let titles = distinct(fs.iter().map(|f| f.title.as_str()), 2);
                    format!(
                        "{} ({} times{})",
                        fs[lead].title,
                        fs.len(),
                        if titles.1 > 1 { ", with variants" } else { "" }
                    )
                };
                if ips.1 > 0 {
                    summary.push_str(&format!(" from {}", list(&ips)));
                }
                let kinds = distinct(fs.iter().map(|f| f.kind.label()), 4);
                if kinds.1 > 1 {
                    summary.push_str(&format!("; seen in {}", kinds.0.join(" and ")));
                }
                if let Some((_, t)) = fs
                    .iter()
                    .filter(|f| !f.kind.is_log())
                    .filter_map(|f| f.entities.url.as_deref())
                    .find_map(|u| written.iter().find(|(w, _)| *w == u.to_ascii_lowercase()))
                {
                    summary.push_str(&format!(
                        " — the file the logs show the attack writing{}",
                        t.map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M UTC")))
                            .unwrap_or_default()
                    ));
                }
                let paths = distinct(fs.iter().filter_map(|f| f.entities.file_path.as_deref()), 3);
                if paths.1 > 1 {
                    summary.push_str(&format!("; paths: {}", list(&paths)));
                }
                match outcome {
                    Some(Outcome::Refused) if stage <= Stage::ExploitAttempt => summary
                        .push_str(" — refused: the server's answer or back end shows it failed"),
                    Some(Outcome::Unknown) => summary
                        .push_str(" — outcome unknown: the logs cannot tell whether it worked"),
                    _ => {}
                }
                StoryStep {
                    start,
                    end,
                    stage,
                    summary,
                    count: fs.len(),
                    findings: idx.into_iter().take(50).collect(),
                    outcome,
                }
            })
            .collect();
    steps.sort_by_key(|a| (a.start, a.stage));
    steps
}

#[cfg(test)]
mod tests {
    use exhunt_model::{ArtefactKind, Campaign, Confidence, Entities, Evidence, Severity};

    use super::*;

    fn f(rule: &str, stage: Stage, when: &str, ip: &str, kind: ArtefactKind) -> Finding {
        Finding {
            id: String::new(),
            rule_id: rule.into(),
            title: format!("{rule} title"),
            campaign: Campaign::ProxyLogon,
            cves: vec![],
            attack: String::new(),
            severity: Severity::High,
            confidence: Confidence::High,
            stage,
            timestamp: exhunt_model::time::parse_iso(when),
            evidence: Evidence {
                path: "x".into(),
                line: 1,
                offset: 0,
                excerpt: String::new(),
            },
            entities: Entities {
                client_ip: Some(ip.into()),
                ..Entities::default()
            },
            kind,
            joins: None,
            outcome: None,
        }
    }

    #[test]
    fn one_rule_at_one_stage_is_one_step_in_time_order() {
        let findings = vec![
            f(
                "EXH-PL-1",
                Stage::ExploitSuccess,
                "2021-03-03T02:14:05Z",
                "198.51.100.1",
                ArtefactKind::HttpProxyLog,
            ),
            f(
                "EXH-PL-1",
                Stage::ExploitSuccess,
                "2021-03-03T02:16:00Z",
                "198.51.100.2",
                ArtefactKind::HttpProxyLog,
            ),
            f(
                "EXH-PL-3",
                Stage::Scan,
                "2021-03-02T22:10:41Z",
                "10.1.0.15",
                ArtefactKind::IisLog,
            ),
        ];
        let steps = build(&findings);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].stage,
            Stage::Scan,
            "time order: the scan came first"
        );
        let ssrf = &steps[1];
        assert_eq!(ssrf.count, 2);
        assert_eq!(ssrf.findings, vec![0, 1]);
        assert_eq!(
            ssrf.start,
            exhunt_model::time::parse_iso("2021-03-03T02:14:05Z")
        );
        assert_eq!(
            ssrf.end,
            exhunt_model::time::parse_iso("2021-03-03T02:16:00Z")
        );
        assert!(ssrf.summary.contains("(2 times)"), "{}", ssrf.summary);
        assert!(ssrf.summary.contains("from 198.51.100.1, 198.51.100.2"));
    }

    #[test]
    fn a_finding_that_joins_another_rule_is_told_in_its_step() {
        let ecp = f(
            "EXH-PL-6",
            Stage::Persistence,
            "2021-03-03T02:15:41Z",
            "198.51.100.1",
            ArtefactKind::EcpServerLog,
        );
        let mut event = f(
            "EXH-EV-4",
            Stage::Persistence,
            "2021-03-03T02:15:42Z",
            "198.51.100.1",
            ArtefactKind::Evtx,
        );
        event.joins = Some("EXH-PL-6".into());
        let steps = build(&[event, ecp]);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].count, 2);
        assert!(
            steps[0].summary.starts_with("EXH-PL-6 title"),
            "{}",
            steps[0].summary
        );
        assert!(steps[0].summary.contains("seen in"), "{}", steps[0].summary);
    }

    #[test]
    fn refused_and_unknown_attempts_are_separate_steps() {
        let mut refused = f(
            "EXH-PL-1",
            Stage::ExploitAttempt,
            "2021-03-03T02:14:05Z",
            "198.51.100.1",
            ArtefactKind::HttpProxyLog,
        );
        refused.outcome = Some(Outcome::Refused);
        let mut unknown = refused.clone();
        unknown.outcome = Some(Outcome::Unknown);
        let steps = build(&[refused, unknown]);
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().any(|s| s.summary.contains("refused")));
        assert!(steps.iter().any(|s| s.summary.contains("outcome unknown")));
    }
}
