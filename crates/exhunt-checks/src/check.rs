//! The seam between readers and checks: a check declares the artefact kinds it reads, its literal
//! prefilter and the fields it needs, and turns candidate records into findings.

use exhunt_model::{
    ArtefactKind, Confidence, Entities, Evidence, Finding, RuleMeta, Severity, Stage, Timestamp,
};
use exhunt_rules::RulePack;
use exhunt_sources::Record;

/// Longest excerpt kept in a finding.
pub const MAX_EXCERPT: usize = 2048;

/// A check over log records.
pub trait LineCheck: Send + Sync {
    /// Rule ids this check can emit (each must have an entry in `rules/checks.toml`).
    fn rule_ids(&self) -> &[&'static str];
    /// Kinds it reads.
    fn kinds(&self) -> &[ArtefactKind];
    /// Prefilter patterns: regular-expression fragments (ASCII case-insensitive, usually a
    /// literal from [`lit`]) of which a line must match one to be a candidate. They are joined
    /// into one alternation per log kind and searched over whole blocks; a check must still test
    /// each candidate itself (a line is handed to every check of its kind).
    fn prefilter(&self, kind: ArtefactKind) -> Vec<String>;
    /// Fields it needs in a layout of this kind; a layout without them makes the check blind.
    fn needs(&self, _kind: ArtefactKind) -> &[&'static str] {
        &[]
    }
    /// Looks at one candidate record.
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>);
}

/// A finding before it is tied to a rule's metadata and a place.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Rule id.
    pub rule_id: &'static str,
    /// Stage (may differ from the rule's default).
    pub stage: Stage,
    /// Severity.
    pub severity: Severity,
    /// Confidence.
    pub confidence: Confidence,
    /// Specific title.
    pub title: String,
    /// Entities.
    pub entities: Entities,
}

/// Collects findings of one file.
pub struct Emitter<'a> {
    pack: &'a RulePack,
    path: &'a str,
    /// Findings so far.
    pub findings: Vec<Finding>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    /// Records skipped by the time filter.
    pub filtered: u64,
}

impl<'a> Emitter<'a> {
    /// An emitter for one file.
    pub fn new(
        pack: &'a RulePack,
        path: &'a str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Self {
        Emitter {
            pack,
            path,
            findings: Vec::new(),
            since,
            until,
            filtered: 0,
        }
    }

    /// Whether a record is inside `--since`/`--until` (records without a time are kept).
    pub fn in_range(&mut self, rec: &Record<'_>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(t) = rec.timestamp() else {
            return true;
        };
        let ok = self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u);
        if !ok {
            self.filtered += 1;
        }
        ok
    }

    /// Records a finding made whole by the check itself (Sigma rules carry their own metadata).
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// The path findings of this file carry.
    pub fn path(&self) -> &str {
        self.path
    }

    /// Records a hit on a record.
    pub fn emit(&mut self, kind: ArtefactKind, rec: &Record<'_>, hit: Hit) {
        let meta: &RuleMeta = match self.pack.rule(hit.rule_id) {
            Some(m) => m,
            None => return, // a test guarantees every id has metadata
        };
        let mut excerpt = rec.raw;
        if excerpt.len() > MAX_EXCERPT {
            let mut cut = MAX_EXCERPT;
            while !excerpt.is_char_boundary(cut) {
                cut -= 1;
            }
            excerpt = &excerpt[..cut];
        }
        self.findings.push(Finding {
            id: String::new(),
            rule_id: meta.id.clone(),
            title: hit.title,
            campaign: meta.campaign,
            cves: meta.cves.clone(),
            attack: meta.attack.clone(),
            severity: hit.severity,
            confidence: hit.confidence,
            stage: hit.stage,
            timestamp: rec.timestamp(),
            evidence: Evidence {
                path: self.path.to_string(),
                line: rec.line,
                offset: rec.offset,
                excerpt: excerpt.to_string(),
            },
            entities: hit.entities,
            kind,
            joins: meta.joins.clone(),
            outcome: None,
        });
    }
}

/// A literal as a prefilter pattern.
pub fn lit(s: &str) -> String {
    regex::escape(s)
}

/// Case-insensitive ASCII substring search.
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    find_ci(hay, needle).is_some()
}

/// Position of a case-insensitive ASCII substring.
pub fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some(0);
    }
    if h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Case-insensitive ASCII prefix test.
pub fn starts_with_ci(hay: &str, prefix: &str) -> bool {
    hay.len() >= prefix.len()
        && hay.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Parses an HTTP status field.
pub fn status(v: Option<&str>) -> Option<u16> {
    v.and_then(|s| s.trim().parse().ok())
}

/// Whether a status means the request was served (2xx or 3xx).
pub fn served(status: Option<u16>) -> bool {
    matches!(status, Some(200..=399))
}

/// A field value that is empty when absent.
pub fn nonempty(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty() && *s != "-").map(str::to_string)
}

/// The request entities of an IIS or HttpProxy record.
pub fn request_entities(rec: &Record<'_>, kind: ArtefactKind) -> Entities {
    match kind {
        ArtefactKind::IisLog => {
            let query = rec.get("cs-uri-query").unwrap_or("");
            let stem = rec.get("cs-uri-stem").unwrap_or("");
            Entities {
                client_ip: nonempty(rec.get("c-ip")),
                user_agent: nonempty(rec.get("cs(User-Agent)")).map(|u| u.replace('+', " ")),
                account: nonempty(rec.get("cs-username")),
                url: Some(if query.is_empty() {
                    stem.to_string()
                } else {
                    format!("{stem}?{query}")
                }),
                status: status(rec.get("sc-status")),
                method: nonempty(rec.get("cs-method")),
                server: nonempty(rec.get("s-computername")),
                ..Entities::default()
            }
        }
        _ => Entities {
            client_ip: nonempty(rec.get("ClientIpAddress")),
            user_agent: nonempty(rec.get("UserAgent")),
            account: nonempty(rec.get("AuthenticatedUser")),
            url: nonempty(rec.get("UrlStem")),
            status: status(rec.get("HttpStatus")),
            method: nonempty(rec.get("Method")),
            request_id: nonempty(rec.get("RequestId")),
            server: nonempty(rec.get("ServerHostName")),
            ..Entities::default()
        },
    }
}
