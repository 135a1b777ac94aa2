//! Event checks: Sigma matches on Windows events turned into findings.
//!
//! Built-in event rules (`rules/sigma/EXH-EV-*.yml`) carry their exhunt metadata (campaign,
//! stage, severity, confidence, the story step they join) in `rules/checks.toml`, like every
//! other check. Rules loaded with `--sigma` get theirs from the rule: level → severity and
//! confidence, tags → ATT&CK technique, stage and campaign (a `cve.2021-26855/26857/26858/27065`
//! tag puts a rule in the ProxyLogon campaign). Their findings name the rule's author and file, as
//! the Detection Rule License asks of every match.
//!
//! Process creations and connections also go into a per-server process table
//! ([`crate::behaviour`]) for what one event cannot show: descent from the web server worker.
//! [`EventChecker::take_correlated`] walks it once every event of a server has been read.

use std::collections::HashMap;
use std::sync::Arc;

use exhunt_model::{
    ArtefactKind, Campaign, Confidence, Entities, Evidence, Finding, RuleMeta, Severity, Stage,
    Timestamp,
};
use exhunt_rules::sigma::{Document, SigmaRuleInfo, SigmaSet};
use exhunt_sources::WinEvent;

use crate::behaviour::{self, At, Correlated, ProcessTable};

/// Longest excerpt kept of an event.
const EXCERPT: usize = 1500;

/// Evaluates the Sigma rules on events and makes findings; shared by the EVTX parser's threads.
pub struct EventChecker {
    sigma: Arc<SigmaSet>,
    metas: HashMap<String, RuleMeta>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    tree: ProcessTable,
}

/// Generic rules and the more specific rules that replace them on the same event: a shell
/// started by w3wp is EXH-EV-8 (or EXH-EV-9), not also "a program outside the toolchain".
const SUPERSEDED: [(&str, &[&str]); 2] = [
    ("EXH-EV-21", &["EXH-EV-8", "EXH-EV-9"]),
    ("EXH-EV-22", &["EXH-EV-8", "EXH-EV-9"]),
];

const PROXYLOGON_TAGS: [&str; 4] = [
    "cve.2021-26855",
    "cve.2021-26857",
    "cve.2021-26858",
    "cve.2021-27065",
];

impl EventChecker {
    /// A checker over `sigma`, with the catalogue entries of the built-in rules.
    pub fn new(
        sigma: Arc<SigmaSet>,
        rules: &[RuleMeta],
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> EventChecker {
        let metas = rules
            .iter()
            .filter(|r| r.id.starts_with("EXH-EV-"))
            .map(|r| (r.id.clone(), r.clone()))
            .collect();
        EventChecker {
            sigma,
            metas,
            since,
            until,
            tree: ProcessTable::new(),
        }
    }

    /// The rule set.
    pub fn sigma(&self) -> &SigmaSet {
        &self.sigma
    }

    /// Whether any rule, or the process table, wants events of this channel and id.
    pub fn wants(&self, channel: &str, event_id: Option<u32>) -> bool {
        self.sigma.wants(channel, event_id) || behaviour::wants(channel, event_id)
    }

    /// Findings of one event of an EVTX file read from `path`.
    pub fn check(&self, ev: &WinEvent, path: &str) -> Vec<Finding> {
        self.check_at(ev, path, ev.record_id, 0, ArtefactKind::Evtx)
    }

    /// Findings of one event read from `path` at `line` and `offset` (the record id and 0 for
    /// EVTX files, the line and byte offset for exports). Matches that need the process tree
    /// are held until [`EventChecker::take_correlated`].
    pub fn check_at(
        &self,
        ev: &WinEvent,
        path: &str,
        line: u64,
        offset: u64,
        kind: ArtefactKind,
    ) -> Vec<Finding> {
        // Ancestry may come from before the time filter: record first.
        self.tree.observe(
            ev,
            &At {
                path,
                line,
                offset,
                kind,
            },
        );
        if let Some(t) = ev.time
            && (self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u))
        {
            return Vec::new();
        }
        let matched: Vec<&SigmaRuleInfo> = self
            .sigma
            .match_event(ev)
            .into_iter()
            .map(|i| self.sigma.info(i))
            .collect();
        let superseded = |id: &str| {
            SUPERSEDED.iter().any(|(generic, specific)| {
                *generic == id
                    && matched
                        .iter()
                        .any(|m| specific.contains(&m.rule_id.as_str()))
            })
        };
        matched
            .iter()
            .filter(|info| !(info.builtin && superseded(&info.rule_id)))
            .filter_map(|info| {
                let evidence = Evidence {
                    path: path.to_string(),
                    line,
                    offset,
                    excerpt: ev.excerpt(EXCERPT),
                };
                let f = self.make(info, ev.time, evidence, entities_of(ev), kind)?;
                if info.builtin && info.rule_id == behaviour::HELD_RULE {
                    self.tree.hold(f, ev)
                } else {
                    Some(f)
                }
            })
            .collect()
    }

    /// Findings that need every event of the server (process ancestry), and the limits the
    /// table reached; empties the table. Called once per server after all its events are read
    /// (servers are scanned one after the other).
    pub fn take_correlated(&self) -> Correlated {
        let meta = |id: &str| self.metas.get(id).cloned();
        self.tree.take(&meta, self.since, self.until)
    }

    /// Findings of the web server rules on one record (an IIS line).
    pub fn check_web(
        &self,
        doc: &dyn Document,
        time: Option<Timestamp>,
        evidence: &Evidence,
        entities: &Entities,
    ) -> Vec<Finding> {
        self.sigma
            .match_web(doc)
            .into_iter()
            .filter_map(|i| {
                self.make(
                    self.sigma.info(i),
                    time,
                    evidence.clone(),
                    entities.clone(),
                    ArtefactKind::IisLog,
                )
            })
            .collect()
    }

    fn make(
        &self,
        info: &SigmaRuleInfo,
        time: Option<Timestamp>,
        evidence: Evidence,
        entities: Entities,
        kind: ArtefactKind,
    ) -> Option<Finding> {
        let (title, campaign, cves, attack, severity, confidence, stage, joins) = if info.builtin {
            let m = self.metas.get(&info.rule_id)?;
            (
                m.title.clone(),
                m.campaign,
                m.cves.clone(),
                m.attack.clone(),
                m.severity,
                m.confidence.unwrap_or(Confidence::High),
                m.stage,
                m.joins.clone(),
            )
        } else {
            let (severity, confidence, stage) = external_grades(info);
            let campaign = if info
                .tags
                .iter()
                .any(|t| PROXYLOGON_TAGS.contains(&t.to_ascii_lowercase().as_str()))
            {
                Campaign::ProxyLogon
            } else {
                Campaign::PostExploitation
            };
            let cves = info
                .tags
                .iter()
                .filter_map(|t| t.strip_prefix("cve."))
                .map(|c| format!("CVE-{}", c.to_ascii_uppercase()))
                .filter(|c| valid_cve(c))
                .collect();
            let title = format!(
                "{} (Sigma rule by {}; {})",
                info.title,
                info.author.as_deref().unwrap_or("unknown author"),
                info.file
            );
            (
                title,
                campaign,
                cves,
                attack_of(&info.tags),
                severity,
                confidence,
                stage,
                None,
            )
        };
        Some(Finding {
            id: String::new(),
            rule_id: info.rule_id.clone(),
            title,
            campaign,
            cves,
            attack,
            severity,
            confidence,
            stage,
            timestamp: time,
            evidence,
            entities,
            kind,
            joins,
            outcome: None,
        })
    }
}

fn valid_cve(c: &str) -> bool {
    let mut parts = c.splitn(3, '-');
    parts.next() == Some("CVE")
        && parts
            .next()
            .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Severity, confidence and stage of a rule from outside: its level says how sure its author is,
/// its tags where in an attack it sits. Informational and low rules are context, not evidence.
fn external_grades(info: &SigmaRuleInfo) -> (Severity, Confidence, Stage) {
    let level = info.level_rank();
    let severity = match level {
        0 => Severity::Info,
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        _ => Severity::Critical,
    };
    let confidence = match level {
        4 => Confidence::High,
        3 => Confidence::Medium,
        _ => Confidence::Low,
    };
    let has = |t: &str| info.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
    let stage = if level <= 1 {
        Stage::Scan
    } else if has("attack.persistence") {
        Stage::Persistence
    } else if has("attack.initial-access") || info.tags.iter().any(|t| t.starts_with("cve.")) {
        Stage::ExploitAttempt
    } else {
        Stage::PostExploitation
    };
    (severity, confidence, stage)
}

/// The most specific ATT&CK technique among the tags (`attack.t1505.003` → `T1505.003`).
fn attack_of(tags: &[String]) -> String {
    let mut best = String::new();
    for t in tags {
        let Some(rest) = t
            .to_ascii_lowercase()
            .strip_prefix("attack.t")
            .map(str::to_string)
        else {
            continue;
        };
        let ok = {
            let (a, b) = rest.split_once('.').unwrap_or((&rest, ""));
            a.len() == 4
                && a.bytes().all(|c| c.is_ascii_digit())
                && (b.is_empty() || (b.len() == 3 && b.bytes().all(|c| c.is_ascii_digit())))
        };
        if ok && rest.len() + 1 > best.len() {
            best = format!("T{rest}");
        }
    }
    if best.is_empty() {
        "T1190".into()
    } else {
        best
    }
}

fn entities_of(ev: &WinEvent) -> Entities {
    let text = |names: &[&str]| {
        names.iter().find_map(|n| {
            ev.get(n)
                .and_then(|v| v.as_text().map(|t| t.into_owned()))
                .filter(|t| !t.is_empty() && t != "-")
        })
    };
    let mut account = text(&[
        "User",
        "SubjectUserName",
        "MemberName",
        "Detection User",
        "SourceUser",
    ]);
    // MSExchange Management: the third unnamed element is the caller.
    if account.is_none() && ev.channel.eq_ignore_ascii_case("MSExchange Management") {
        account = ev.unnamed.get(2).filter(|s| !s.is_empty()).cloned();
    }
    Entities {
        account,
        file_path: text(&["TargetFilename", "Path", "Image", "SourceImage"]),
        target: text(&["TargetUserName", "TargetImage", "ObjectDN", "DestinationIp"]),
        server: Some(ev.computer.clone()).filter(|c| !c.is_empty()),
        ..Entities::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_technique_from_tags() {
        let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            attack_of(&tags(&[
                "attack.persistence",
                "attack.t1505",
                "attack.t1505.003"
            ])),
            "T1505.003"
        );
        assert_eq!(attack_of(&tags(&["attack.t15"])), "T1190");
        assert!(valid_cve("CVE-2021-26857"));
        assert!(!valid_cve("CVE-21-x"));
    }
}
