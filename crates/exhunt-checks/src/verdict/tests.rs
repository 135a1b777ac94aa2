//! Tests of the verdict: what each combination of findings and coverage is judged.

use exhunt_model::{
    Entities, Evidence, KindCoverage, ScanSettings, Severity, Timestamp, VerdictKind,
};

use super::*;

fn at(s: &str) -> Timestamp {
    exhunt_model::time::parse_iso(s).unwrap()
}

fn finding(campaign: Campaign, stage: Stage, confidence: Confidence, when: &str) -> Finding {
    Finding {
        id: String::new(),
        rule_id: "EXH-TEST-1".into(),
        title: "test".into(),
        campaign,
        cves: vec![],
        attack: String::new(),
        severity: Severity::High,
        confidence,
        stage,
        timestamp: Some(at(when)),
        evidence: Evidence {
            path: "x".into(),
            line: 1,
            offset: 0,
            excerpt: String::new(),
        },
        entities: Entities::default(),
        kind: ArtefactKind::IisLog,
        joins: None,
        outcome: None,
    }
}

fn covered(kinds: &[ArtefactKind], first: &str, last: &str, complete: bool) -> Coverage {
    Coverage {
        kinds: kinds
            .iter()
            .map(|&kind| KindCoverage {
                kind,
                files: 2,
                files_complete: if complete { 2 } else { 1 },
                bytes: 100,
                records: 10,
                first: Some(at(first)),
                last: Some(at(last)),
                checked: true,
            })
            .collect(),
        ..Coverage::default()
    }
}

fn one(campaign: Campaign, findings: &[Finding], coverage: &Coverage) -> Verdict {
    judge_one(campaign, findings, coverage, &[], &ScanSettings::default())
}

const LOGS: [ArtefactKind; 4] = [
    ArtefactKind::HttpProxyLog,
    ArtefactKind::EcpServerLog,
    ArtefactKind::OabGeneratorLog,
    ArtefactKind::WebFile,
];

#[test]
fn nothing_found_in_full_coverage_is_no_evidence_and_a_gap_makes_it_inconclusive() {
    let full = covered(&LOGS, "2020-12-01", "2021-06-01", true);
    let v = one(Campaign::ProxyLogon, &[], &full);
    assert_eq!(v.verdict, VerdictKind::NoEvidence, "{v:?}");
    // Logs that start after the window opened cannot speak for its beginning.
    let late = covered(&LOGS, "2021-02-15", "2021-06-01", true);
    let v = one(Campaign::ProxyLogon, &[], &late);
    assert_eq!(v.verdict, VerdictKind::Inconclusive);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("after the exposure window opened"))
    );
    // A file read incompletely is a gap too.
    let cut = covered(&LOGS, "2020-12-01", "2021-06-01", false);
    assert_eq!(
        one(Campaign::ProxyLogon, &[], &cut).verdict,
        VerdictKind::Inconclusive
    );
    // A missing log kind is named.
    let no_oab = covered(&LOGS[..2], "2020-12-01", "2021-06-01", true);
    let v = one(Campaign::ProxyLogon, &[], &no_oab);
    assert_eq!(v.verdict, VerdictKind::Inconclusive);
    assert!(
        v.reasons.iter().any(|r| r.contains("OAB generator logs")),
        "{v:?}"
    );
}

#[test]
fn compromise_needs_a_confident_finding_past_the_attempt() {
    let full = covered(&LOGS, "2020-12-01", "2021-06-01", true);
    let success = finding(
        Campaign::ProxyLogon,
        Stage::ExploitSuccess,
        Confidence::High,
        "2021-03-03T02:14:05Z",
    );
    let v = one(Campaign::ProxyLogon, std::slice::from_ref(&success), &full);
    assert_eq!(v.verdict, VerdictKind::Compromised);
    assert!(v.summary.starts_with("COMPROMISED:"));
    assert_eq!(v.first_evidence, Some(at("2021-03-03T02:14:05Z")));
    // The same finding for another campaign says nothing about this one.
    let v = one(Campaign::ProxyShell, &[success], &full);
    assert_ne!(v.verdict, VerdictKind::Compromised);
    // An attempt is an attempt.
    let attempt = finding(
        Campaign::ProxyLogon,
        Stage::ExploitAttempt,
        Confidence::High,
        "2021-03-03T02:14:05Z",
    );
    let v = one(Campaign::ProxyLogon, &[attempt], &full);
    assert_eq!(v.verdict, VerdictKind::Attempted);
    assert!(v.summary.starts_with("ATTEMPTED:"));
    // A low-confidence persistence finding (a place, not content) is a review, never a
    // compromise.
    let review = finding(
        Campaign::PostExploitation,
        Stage::Persistence,
        Confidence::Low,
        "2021-03-03T02:14:05Z",
    );
    let v = one(Campaign::PostExploitation, &[review], &full);
    assert_eq!(v.verdict, VerdictKind::Attempted);
    assert!(v.summary.starts_with("REVIEW:"), "{v:?}");
    // Scans alone do not make a server attempted.
    let scan = finding(
        Campaign::ProxyLogon,
        Stage::Scan,
        Confidence::High,
        "2021-03-03T02:14:05Z",
    );
    let v = one(Campaign::ProxyLogon, &[scan], &full);
    assert_eq!(v.verdict, VerdictKind::NoEvidence, "{v:?}");
}

#[test]
fn a_time_filter_that_cuts_the_window_is_a_gap() {
    let full = covered(&LOGS, "2020-12-01", "2021-06-01", true);
    let settings = ScanSettings {
        since: Some(at("2021-03-01")),
        ..ScanSettings::default()
    };
    let v = judge_one(Campaign::ProxyLogon, &[], &full, &[], &settings);
    assert_eq!(v.verdict, VerdictKind::Inconclusive);
    assert!(
        v.reasons.iter().any(|r| r.contains("--since 2021-03-01")),
        "{v:?}"
    );
}
