//! The plan: a scan result in, actions out. Pure: no file, no clock, no network.
//!
//! Every action cites the findings that justify it as `F<n>`, the index of the finding in its
//! server's `findings` array of the result, so a reader can check each one. What the evidence
//! cannot know (which accounts logged on, whether the server was disconnected) is said, not
//! guessed. The SHA-256 and size of files to quarantine come from [`FileFacts`] that the caller
//! measured (the result does not carry them); apply pins them: a file that changed since the
//! plan is not touched.

use std::collections::{BTreeMap, BTreeSet};

use exhunt_model::{
    ArtefactKind, Campaign, Confidence, Finding, ScanResult, ServerResult, Severity, Stage,
    VerdictKind,
};
use exhunt_rules::builds::{BuildTable, Patch, Update, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ps::{quote, script};

/// The plan's format name and version.
pub const PLAN_SCHEMA: &str = "exhunt-remediate-plan/1";

/// A plan for every server of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// A hash of the result's servers and findings (not of its scan times): the same evidence
    /// gives the same id. Names the PowerShell markers and the vault.
    pub id: String,
    /// The exhunt that made the result.
    pub result_tool: String,
    /// The result's overall verdict.
    pub verdict: VerdictKind,
    /// One plan per server.
    pub servers: Vec<ServerPlan>,
}

/// The actions for one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPlan {
    /// Server name.
    pub server: String,
    /// Its verdict.
    pub verdict: VerdictKind,
    /// The scan targets (file paths in the result are under one of them).
    pub targets: Vec<String>,
    /// The actions, most urgent first.
    pub actions: Vec<Action>,
    /// What the evidence cannot answer.
    pub cannot_know: Vec<String>,
}

/// What an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Move a malicious file into the vault (the only kind `apply` carries out).
    Quarantine,
    /// A file whose content the scan could not confirm as malicious: look before acting.
    ReviewFile,
    /// Exchange or IIS configuration to restore, as PowerShell.
    Configuration,
    /// Credentials to reset.
    Credentials,
    /// The update to install.
    Patch,
    /// The CISA ED 21-02 checklist, with what the evidence answers.
    Directive,
}

impl ActionKind {
    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::Quarantine => "quarantine",
            ActionKind::ReviewFile => "review file",
            ActionKind::Configuration => "configuration",
            ActionKind::Credentials => "credentials",
            ActionKind::Patch => "patch",
            ActionKind::Directive => "directive checklist",
        }
    }
}

/// How soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// Now: the attacker may still use it.
    Immediate,
    /// Before the server is trusted again.
    High,
    /// As part of the recovery.
    Normal,
    /// Look before acting.
    Review,
}

impl Urgency {
    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            Urgency::Immediate => "immediate",
            Urgency::High => "high",
            Urgency::Normal => "normal",
            Urgency::Review => "review",
        }
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `A1`, `A2`… in the server's plan.
    pub id: String,
    /// What kind.
    pub kind: ActionKind,
    /// How soon.
    pub urgency: Urgency,
    /// What to do.
    pub title: String,
    /// Why, in words.
    pub why: String,
    /// The findings that justify it (`F<n>`: index in the server's findings).
    pub findings: Vec<String>,
    /// The same findings by their stable ids (`f-…`, result schema 1.6), in the same order:
    /// what a rescan, the fleet server or a ticket can match, where an index may move. Empty
    /// when the result's findings have no ids (before 1.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finding_ids: Vec<String>,
    /// For file actions: the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    /// For configuration: the script for the Exchange Management Shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powershell: Option<String>,
    /// Details: accounts, builds, checklist items, each with what the evidence says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
}

/// A file named by the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTarget {
    /// The path as the result names it.
    pub path: String,
    /// The path relative to the scan target it lies under (`/`-separated), when it does:
    /// `apply --target DIR` finds the file there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative: Option<String>,
    /// Web shell, memory dump, staged archive, malicious file.
    pub what: String,
    /// SHA-256 when the planner could read the file; apply refuses a file that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes, with the hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A detail line: a name and what the evidence says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The account, build, step…
    pub name: String,
    /// What the evidence says (or that it cannot say).
    pub answer: String,
}

/// Hash and size of a file, measured by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The files a plan would quarantine or ask to review, by the path the result names: the
/// caller measures them ([`FileFacts`]) before calling [`plan`].
pub fn files_named(result: &ScanResult) -> Vec<String> {
    let mut out = BTreeSet::new();
    for s in &result.servers {
        for f in &s.findings {
            if let Some(p) = on_disk(f, &s.targets) {
                out.insert(p);
            }
        }
    }
    out.into_iter().collect()
}

/// Makes the plan.
pub fn plan(result: &ScanResult, builds: &BuildTable, facts: &BTreeMap<String, FileFacts>) -> Plan {
    let id = plan_id(result);
    Plan {
        schema: PLAN_SCHEMA.to_string(),
        id: id.clone(),
        result_tool: format!("{} {}", result.tool.name, result.tool.version),
        verdict: result.verdict,
        servers: result
            .servers
            .iter()
            .map(|s| server_plan(&id, s, builds, facts))
            .collect(),
    }
}

fn plan_id(result: &ScanResult) -> String {
    let mut h = Sha256::new();
    for s in &result.servers {
        h.update(s.name.as_bytes());
        h.update([0]);
        if let Ok(j) = serde_json::to_vec(&s.findings) {
            h.update(&j);
        }
    }
    hex::encode(&h.finalize()[..6])
}

/// Stands for the action id in scripts until the actions are numbered.
const ACTION_PLACEHOLDER: &str = "@@ACTION@@";

fn fid(i: usize) -> String {
    format!("F{i}")
}

/// The stable ids of the findings `F<n>` names, in order; empty unless every one has an id.
fn stable_ids(s: &ServerResult, findings: &[String]) -> Vec<String> {
    let ids: Option<Vec<String>> = findings
        .iter()
        .map(|f| {
            f.strip_prefix('F')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|i| s.findings.get(i))
                .map(|f| f.id.clone())
                .filter(|id| stable_id_shape(id))
        })
        .collect();
    ids.unwrap_or_default()
}

/// `f-` and 16 lower-case hex digits, with `-2`, `-3`… for a repeat (what the scanner writes;
/// the result file may come from anywhere, and an id is printed as it is).
fn stable_id_shape(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("f-") else {
        return false;
    };
    let (hex, repeat) = rest.split_once('-').unwrap_or((rest, "1"));
    hex.len() == 16
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !repeat.is_empty()
        && repeat.len() <= 6
        && repeat.bytes().all(|b| b.is_ascii_digit())
}

/// The path as the finding names it.
fn raw_path(f: &Finding) -> &str {
    f.entities.file_path.as_deref().unwrap_or(&f.evidence.path)
}

/// `ARCHIVE` of a member path `ARCHIVE!MEMBER` (how the scan names a file read inside an
/// archive): the member's name is the archive's author's, never a path on disk.
fn archive_of(p: &str) -> Option<&str> {
    const EXT: [&str; 10] = [
        ".zip", ".jar", ".war", ".nupkg", ".7z", ".rar", ".tar", ".gz", ".tgz", ".cab",
    ];
    p.match_indices('!').map(|(i, _)| &p[..i]).find(|a| {
        let l = a.to_ascii_lowercase();
        EXT.iter().any(|e| l.ends_with(e))
    })
}

/// The path of the file a finding is about, when the finding was made from the file itself. A
/// member of an archive is never taken for a file on disk: the archive itself is (unless the
/// archive is a scan target: the evidence, not the server).
fn on_disk(f: &Finding, targets: &[String]) -> Option<String> {
    if !matches!(
        f.kind,
        ArtefactKind::WebFile
            | ArtefactKind::MemoryDump
            | ArtefactKind::Archive
            | ArtefactKind::File
    ) {
        return None;
    }
    let p = raw_path(f);
    let p = match archive_of(p) {
        Some(a)
            if targets
                .iter()
                .any(|t| norm(t).trim_end_matches('/') == norm(a)) =>
        {
            return None;
        }
        Some(a) => a,
        None => p,
    };
    (!p.is_empty()).then(|| p.to_string())
}

/// An LSASS dump: the events of one being made, or a dump file named after it.
fn lsass_dump(f: &Finding) -> bool {
    matches!(f.rule_id.as_str(), "EXH-EV-10" | "EXH-EV-11")
        || (f.kind == ArtefactKind::MemoryDump
            && !is_review(f)
            && norm(raw_path(f))
                .rsplit('/')
                .next()
                .is_some_and(|n| n.contains("lsass")))
}

fn is_review(f: &Finding) -> bool {
    f.confidence == Confidence::Low
        || f.title.starts_with("REVIEW:")
        || f.severity < Severity::Medium
}

/// `/`-separated and lower-case, for comparing paths written by different logs.
fn norm(p: &str) -> String {
    p.replace('\\', "/").to_lowercase()
}

fn relative_to(path: &str, targets: &[String]) -> Option<String> {
    let p = path.replace('\\', "/");
    for t in targets {
        let t = t.replace('\\', "/");
        let t = t.trim_end_matches('/');
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = p.strip_prefix(t)
            && let Some(rest) = rest.strip_prefix('/')
            && !rest.is_empty()
            && !rest
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return Some(rest.to_string());
        }
    }
    None
}

struct Builder<'a> {
    plan_id: &'a str,
    server: &'a ServerResult,
    actions: Vec<Action>,
    cannot_know: Vec<String>,
}

impl Builder<'_> {
    /// Adds an action; ids are given once all are known and sorted.
    fn push(&mut self, a: Action) {
        self.actions.push(a);
    }
    fn findings(&self, pred: impl Fn(&Finding) -> bool) -> Vec<usize> {
        self.server
            .findings
            .iter()
            .enumerate()
            .filter(|(_, f)| pred(f))
            .map(|(i, _)| i)
            .collect()
    }
}

fn action(
    kind: ActionKind,
    urgency: Urgency,
    title: String,
    why: String,
    findings: &[usize],
) -> Action {
    Action {
        id: String::new(),
        kind,
        urgency,
        title,
        why,
        findings: findings.iter().map(|&i| fid(i)).collect(),
        finding_ids: Vec::new(),
        file: None,
        powershell: None,
        items: Vec::new(),
    }
}

fn server_plan(
    plan_id: &str,
    s: &ServerResult,
    builds: &BuildTable,
    facts: &BTreeMap<String, FileFacts>,
) -> ServerPlan {
    let mut b = Builder {
        plan_id,
        server: s,
        actions: Vec::new(),
        cannot_know: Vec::new(),
    };
    files(&mut b, facts);
    configuration(&mut b);
    let cred = credentials(&mut b);
    let patch = patch(&mut b, builds);
    directive(&mut b, cred, patch);
    // The directive's checklist first (disconnecting is the first step when compromised), then
    // the most urgent; ids follow that order, so A1 is the first thing to do.
    b.actions
        .sort_by_key(|a| (a.kind != ActionKind::Directive, a.urgency, a.kind));
    for (i, a) in b.actions.iter_mut().enumerate() {
        let new = format!("A{}", i + 1);
        if let Some(ps) = &mut a.powershell {
            *ps = ps.replace(ACTION_PLACEHOLDER, &new);
        }
        a.id = new;
    }
    for a in &mut b.actions {
        a.finding_ids = stable_ids(s, &a.findings);
    }
    // The directive checklist refers to other actions by id: fix those references.
    let ids: BTreeMap<ActionKind, Vec<String>> =
        b.actions.iter().fold(BTreeMap::new(), |mut m, a| {
            m.entry(a.kind).or_insert_with(Vec::new).push(a.id.clone());
            m
        });
    // Only the checklist's own wording holds these references (never text from evidence).
    for a in b
        .actions
        .iter_mut()
        .filter(|a| a.kind == ActionKind::Directive)
    {
        for it in &mut a.items {
            for (k, v) in &ids {
                let key = format!("{{{}}}", k.label());
                if it.answer.contains(&key) {
                    it.answer = it.answer.replace(&key, &v.join(", "));
                }
            }
        }
    }
    ServerPlan {
        server: s.name.clone(),
        verdict: s.verdict,
        targets: s.targets.clone(),
        actions: b.actions,
        cannot_know: b.cannot_know,
    }
}

fn files(b: &mut Builder<'_>, facts: &BTreeMap<String, FileFacts>) {
    let mut by_path: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in b.server.findings.iter().enumerate() {
        if let Some(p) = on_disk(f, &b.server.targets) {
            by_path.entry(p).or_default().push(i);
        }
    }
    for (path, idx) in by_path {
        let fs: Vec<&Finding> = idx.iter().map(|&i| &b.server.findings[i]).collect();
        let confirmed = fs.iter().any(|f| !is_review(f));
        let relative = relative_to(&path, &b.server.targets);
        let url = fs.iter().find_map(|f| f.entities.url.clone());
        let kind = if fs.iter().any(|f| f.kind == ArtefactKind::MemoryDump) {
            ArtefactKind::MemoryDump
        } else if fs.iter().any(|f| f.kind == ArtefactKind::WebFile) {
            ArtefactKind::WebFile
        } else if fs.iter().any(|f| f.kind == ArtefactKind::Archive) {
            ArtefactKind::Archive
        } else {
            ArtefactKind::File
        };
        let titles = fs
            .iter()
            .map(|f| f.title.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        let member = fs.iter().any(|f| raw_path(f) != path);
        let what = match kind {
            _ if member => "archive holding a flagged file",
            ArtefactKind::MemoryDump => "memory dump",
            ArtefactKind::WebFile
                if titles.contains("oab_virtualdirectory")
                    || titles.contains("oab virtual-directory") =>
            {
                "OAB dump page carrying script"
            }
            ArtefactKind::WebFile if fs.iter().any(|f| f.rule_id == "EXH-FS-3") => {
                "export or binary written as a page"
            }
            ArtefactKind::WebFile => "web shell",
            ArtefactKind::Archive => "staged archive",
            _ => "malicious file",
        };
        // Requests for it and the log lines that show it written are part of the why.
        let tail = relative.as_deref().map(norm);
        let mut cited: BTreeSet<usize> = idx.iter().copied().collect();
        for (i, f) in b.server.findings.iter().enumerate() {
            let by_url =
                url.is_some() && f.entities.url.as_deref().map(norm) == url.as_deref().map(norm);
            let by_path = tail.as_ref().is_some_and(|t| {
                f.entities
                    .file_path
                    .as_deref()
                    .is_some_and(|p| norm(p).ends_with(&format!("/{t}")) || norm(p) == *t)
            });
            let request = matches!(f.stage, Stage::WebShellUse | Stage::Persistence);
            if request && (by_url || by_path) {
                cited.insert(i);
            }
        }
        let cited: Vec<usize> = cited.into_iter().collect();
        // A dump of another process (a WER crash dump of w3wp) or an archive found only by its
        // name and place is the attacker's only when something else says so.
        let lsass_named = norm(&path)
            .rsplit('/')
            .next()
            .is_some_and(|n| n.contains("lsass"))
            || !b
                .findings(|f| matches!(f.rule_id.as_str(), "EXH-EV-10" | "EXH-EV-11"))
                .is_empty();
        let heuristic = match kind {
            ArtefactKind::MemoryDump => !lsass_named,
            ArtefactKind::Archive => fs.iter().all(|f| f.rule_id == "EXH-FS-6"),
            _ => false,
        };
        let corroborated = b.server.verdict == VerdictKind::Compromised || cited.len() > idx.len();
        let uncorroborated = confirmed && heuristic && !corroborated;
        let confirmed = confirmed && !uncorroborated;
        let fact = facts.get(&path);
        let file = FileTarget {
            path: path.clone(),
            relative,
            what: what.to_string(),
            sha256: fact.map(|f| f.sha256.clone()),
            size: fact.map(|f| f.size),
        };
        let rules: BTreeSet<&str> = fs.iter().map(|f| f.rule_id.as_str()).collect();
        let rules = rules.into_iter().collect::<Vec<_>>().join(", ");
        let mut a = if confirmed {
            let urgency = match kind {
                ArtefactKind::WebFile | ArtefactKind::MemoryDump => Urgency::Immediate,
                _ => Urgency::High,
            };
            let why = match kind {
                ArtefactKind::MemoryDump => format!(
                    "a memory dump ({rules}) holds whatever the dumped process held — an LSASS dump holds credentials; it is the attacker's, not a forensic image"
                ),
                ArtefactKind::WebFile => format!(
                    "the file's content is malicious ({rules}); while it is served the attacker keeps code execution{}",
                    if norm(&path).contains("/frontend/httpproxy/")
                        || norm(&path).contains("/clientaccess/")
                    {
                        "; if Exchange ships a file of this name, put the original back from the installation media after quarantine"
                    } else {
                        ""
                    }
                ),
                ArtefactKind::Archive => format!("an archive staged for exfiltration ({rules})"),
                _ => format!("malicious content ({rules})"),
            };
            action(
                ActionKind::Quarantine,
                urgency,
                format!("Quarantine the {what} {path}"),
                why,
                &cited,
            )
        } else {
            action(
                ActionKind::ReviewFile,
                Urgency::Review,
                format!("Review {path} before deciding; apply leaves it in place"),
                if uncorroborated {
                    format!(
                        "found by its name and place only ({rules}), with a verdict that is not compromised and no other finding about it: a crash dump or an ordinary archive looks the same"
                    )
                } else {
                    format!(
                        "only review findings ({rules}): the content shows nothing the scanner can confirm as malicious"
                    )
                },
                &cited,
            )
        };
        a.file = Some(file);
        b.push(a);
    }
}

/// The value after `-Name` in a cmdlet line: `-Name "v"`, `-Name 'v'` or `-Name v`.
pub(crate) fn param(text: &str, name: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let key = format!("-{} ", name.to_ascii_lowercase());
    let at = lower.find(&key)? + key.len();
    let rest = text.get(at..)?.trim_start();
    let mut chars = rest.chars();
    let v = match chars.next()? {
        q @ ('"' | '\'') => {
            let body: String = chars.as_str().to_string();
            let end = body.find(q)?;
            body[..end].to_string()
        }
        _ => rest
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .next()?
            .trim_end_matches('.')
            .to_string(),
    };
    (!v.is_empty()).then_some(v)
}

fn text_of(f: &Finding) -> String {
    format!("{} {}", f.title, f.evidence.excerpt)
}

/// A finding the scanner itself rates as look-alike: an administrator's change reads the same.
fn low(f: &Finding) -> bool {
    f.confidence == Confidence::Low || f.title.starts_with("REVIEW:")
}

/// Whether a path is one IIS serves (or Exchange's web folders): where a mailbox export is a
/// web shell, not a PST on a file share.
fn web_path(p: &str) -> bool {
    let l = norm(p);
    l.ends_with(".aspx")
        || l.ends_with(".ashx")
        || l.ends_with(".asmx")
        || l.contains("/inetpub/")
        || l.contains("aspnet_client")
        || l.contains("/frontend/httpproxy/")
        || l.contains("/clientaccess/")
}

/// What a configuration script does when every finding behind it is low confidence: record
/// the state, change nothing.
const REVIEW_CHANGE: &str = "Write-Output 'exhunt: review only: the evidence is low confidence (an administrator''s change looks the same); the current state is recorded above: confirm it is the attacker''s, then act by hand'";

fn configuration(b: &mut Builder<'_>) {
    let first = b.actions.len();
    configuration_actions(b);
    // Low-confidence findings only: a review, never a ready-to-run change.
    for a in b.actions.iter_mut().skip(first) {
        let all_low = !a.findings.is_empty()
            && a.findings.iter().all(|f| {
                f.strip_prefix('F')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|i| b.server.findings.get(i))
                    .is_some_and(low)
            });
        if !all_low {
            continue;
        }
        a.urgency = Urgency::Review;
        a.title = format!("Review (low confidence): {}", a.title);
        a.why = format!(
            "{}; every finding behind it is low confidence, so the script only records the current state",
            a.why
        );
        if let Some(ps) = &mut a.powershell
            && let Some(r) = crate::ps::record_of(ps)
        {
            *ps = script(
                b.plan_id,
                ACTION_PLACEHOLDER,
                "record the state for review (changes nothing)",
                r,
                REVIEW_CHANGE,
            );
        }
    }
}

fn configuration_actions(b: &mut Builder<'_>) {
    let server_q = quote(&b.server.name);
    // Virtual directory URLs set to script (CVE-2021-27065).
    let url_findings =
        b.findings(|f| matches!(f.rule_id.as_str(), "EXH-PL-6" | "EXH-EV-4" | "EXH-EV-5"));
    let mut by_kind: BTreeMap<(String, String), (Vec<usize>, BTreeSet<String>)> = BTreeMap::new();
    for &i in &url_findings {
        let f = &b.server.findings[i];
        let t = text_of(f);
        let vdir = t
            .find("Set-")
            .and_then(|at| {
                let rest = &t[at + 4..];
                let end = rest.find("VirtualDirectory")?;
                let k = &rest[..end];
                (k.len() <= 20 && k.chars().all(|c| c.is_ascii_alphabetic()) && !k.is_empty())
                    .then(|| k.to_string())
            })
            .unwrap_or_else(|| "Oab".to_string());
        let target = f.entities.target.clone().unwrap_or_default();
        let (prop, value) = match target.split_once('=') {
            Some((p, v)) if p.ends_with("Url") && p.chars().all(|c| c.is_ascii_alphanumeric()) => {
                (p.to_string(), v.to_string())
            }
            _ => ("ExternalUrl".to_string(), target.clone()),
        };
        // The ECP server log is CSV: a quote in a value is written twice.
        let value = if f.kind == ArtefactKind::EcpServerLog {
            value.replace("\"\"", "\"")
        } else {
            value
        };
        let e = by_kind.entry((vdir, prop)).or_default();
        e.0.push(i);
        if !value.is_empty() {
            e.1.insert(value);
        }
    }
    for ((vdir, prop), (idx, seen)) in by_kind {
        let seen_q: Vec<String> = seen.iter().map(|v| quote(v)).collect();
        let record = format!(
            "Get-{vdir}VirtualDirectory -Server {server_q} | Select-Object Identity,Server,InternalUrl,ExternalUrl"
        );
        // Only an ExternalUrl is set back to the InternalUrl, and only when the InternalUrl is
        // clean: a URL is never "restored" to itself or to another URL carrying script.
        let external = prop == "ExternalUrl";
        let change = if external {
            format!(
                "$exhuntSeen = @({seen})\n\
                 $exhuntScript = '(?i)<\\s*script|runat\\s*=|<%'\n\
                 foreach ($vd in $before) {{\n\
                 \x20   $url = [string]$vd.ExternalUrl\n\
                 \x20   $internal = [string]$vd.InternalUrl\n\
                 \x20   if ($url -match $exhuntScript -or $exhuntSeen -contains $url) {{\n\
                 \x20       if ($internal -match $exhuntScript -or $exhuntSeen -contains $internal) {{ Write-Output ('exhunt: ' + $vd.Identity + ' InternalUrl carries script too: set both URLs by hand'); continue }}\n\
                 \x20       Set-{vdir}VirtualDirectory -Identity $vd.Identity -ExternalUrl $vd.InternalUrl\n\
                 \x20       Write-Output ('exhunt: ' + $vd.Identity + ' ExternalUrl set back to its InternalUrl')\n\
                 \x20   }}\n\
                 }}",
                seen = seen_q.join(", ")
            )
        } else {
            format!(
                "Write-Output 'exhunt: review by hand: the {prop} carries script; set it to the URL this virtual directory should have (exhunt does not guess it): Set-{vdir}VirtualDirectory -Identity IDENTITY -{prop} URL'"
            )
        };
        let mut a = action(
            ActionKind::Configuration,
            Urgency::Immediate,
            if external {
                format!(
                    "Set the {vdir} virtual directory ExternalUrl that carries script back to its internal URL"
                )
            } else {
                format!(
                    "Review by hand: the {vdir} virtual directory {prop} carries script; set it to its proper URL"
                )
            },
            format!(
                "the {prop} was set to server script (CVE-2021-27065); Reset-{vdir}VirtualDirectory writes it into any file the attacker names, so every reset re-plants a web shell"
            ),
            &idx,
        );
        a.items = seen
            .iter()
            .map(|v| Item {
                name: format!("{prop} seen"),
                answer: v.clone(),
            })
            .collect();
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            &format!("restore the {vdir} virtual directory {prop}"),
            &record,
            &change,
        ));
        b.push(a);
    }

    // IIS virtual directories serving ProgramData or a user folder (ProxyShell persistence).
    for i in b.findings(|f| f.rule_id == "EXH-PS-2") {
        let f = &b.server.findings[i];
        let site = f
            .title
            .split_once("of site \"")
            .and_then(|(_, r)| r.split_once("\" from "))
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| "Default Web Site".to_string());
        let url = f.entities.url.clone().unwrap_or_default();
        let physical = f.entities.file_path.clone().unwrap_or_default();
        let path = format!("/{}", url.trim_matches('/'));
        // The root of a site (or of an application) serves OWA and ECP: never deleted.
        let root = path == "/";
        // appcmd names an application or a virtual directory `SITE/PATH` whatever application
        // it belongs to. A native program's arguments are re-quoted by PowerShell 5.1, so a
        // quote in the name is refused rather than passed.
        let record = format!(
            "$exhuntAppcmd = Join-Path $env:windir 'system32\\inetsrv\\appcmd.exe'; $exhuntSite = {site}; $exhuntPath = {path}; $exhuntPhysical = {physical}; \
             $exhuntId = $exhuntSite + $exhuntPath; if ($exhuntId.Contains([string][char]0x22)) {{ throw 'exhunt: a quote in the site or path: remove it by hand in IIS Manager' }}; \
             & $exhuntAppcmd list app ('/app.name:' + $exhuntId) /config:*; & $exhuntAppcmd list vdir ('/vdir.name:' + $exhuntId) /config:*",
            site = quote(&site),
            path = quote(&path),
            physical = quote(&physical),
        );
        // An application (its root virtual directory) is never deleted: other pages may live
        // in it, and at `/` it is the site itself. Only a virtual directory that is not the root
        // of an application is removed; anything else is for a person to restore.
        let change = if root {
            "Write-Output 'exhunt: review by hand: the root of the site serves the folder in the evidence; set its physicalPath back in IIS Manager (exhunt never deletes a root application)'".to_string()
        } else {
            "if (-not (($before -join [string][char]0x0a).Contains($exhuntPhysical))) { throw 'exhunt: the folder served is not the one in the evidence (or nothing is configured): review by hand' }\n\
             if ($exhuntPath -eq '/' -or (& $exhuntAppcmd list app ('/app.name:' + $exhuntId))) { throw 'exhunt: it is an application (or the site root): exhunt never deletes one; set its physicalPath back in IIS Manager' }\n\
             & $exhuntAppcmd delete vdir ('/vdir.name:' + $exhuntId)\n\
             if ($LASTEXITCODE -ne 0) { throw 'exhunt: appcmd did not remove it' }"
                .to_string()
        };
        let mut a = action(
            ActionKind::Configuration,
            Urgency::Immediate,
            if root {
                format!("Review by hand: the root of site \"{site}\" serves {physical}; set its physical path back")
            } else {
                format!("Remove the IIS virtual directory {url} of site \"{site}\" that serves {physical}")
            },
            "a virtual directory serving a folder under ProgramData or a user profile makes files the attacker writes there servable pages (ProxyShell persistence); collect and quarantine that folder's scripts too".to_string(),
            &[i],
        );
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            "remove an IIS virtual directory",
            &record,
            &change,
        ));
        b.push(a);
    }

    // Mailbox exports written as pages.
    let mut exports: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for i in b.findings(|f| {
        matches!(f.rule_id.as_str(), "EXH-EV-6" | "EXH-EV-20")
            && text_of(f)
                .to_ascii_lowercase()
                .contains("new-mailboxexportrequest")
    }) {
        let f = &b.server.findings[i];
        let t = text_of(f);
        let mailbox = param(&t, "Mailbox").unwrap_or_default();
        let path = param(&t, "FilePath").unwrap_or_default();
        // A script block may hold an ordinary export to a share: only a web path makes it the
        // attacker's (EV-6 is already about one).
        if f.rule_id == "EXH-EV-20" && !web_path(&path) {
            continue;
        }
        exports.entry((mailbox, path)).or_default().push(i);
    }
    for ((mailbox, path), idx) in exports {
        // Only requests that write to a web path are removed (the path of the evidence only
        // when it is one).
        let record = format!(
            "$exhuntPath = {p}; Get-MailboxExportRequest -ResultSize Unlimited | Where-Object {{ {eq}[string]$_.FilePath -match '(?i)\\.(aspx|ashx|asmx)$|\\\\inetpub\\\\|aspnet_client|\\\\FrontEnd\\\\HttpProxy\\\\|\\\\ClientAccess\\\\' }} | Select-Object Identity,Mailbox,FilePath,Status,RequestGuid",
            p = quote(&path),
            eq = if web_path(&path) {
                "[string]$_.FilePath -eq $exhuntPath -or "
            } else {
                ""
            }
        );
        let change = "foreach ($r in $before) {\n    Remove-MailboxExportRequest -Identity $r.Identity -Confirm:$false\n    Write-Output ('exhunt: removed export request ' + $r.Identity)\n}".to_string();
        let mut a = action(
            ActionKind::Configuration,
            Urgency::Immediate,
            "Remove the mailbox export requests written as pages".to_string(),
            format!(
                "New-MailboxExportRequest wrote a mailbox to a web path (ProxyShell); the request stays on the server until removed, and the file it wrote is a web shell{}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": quarantine {path} if it is still there (this scan did not read it unless a quarantine action names it)"
                    )
                }
            ),
            &idx,
        );
        a.items = vec![
            Item {
                name: "mailbox".into(),
                answer: if mailbox.is_empty() {
                    "not named in the evidence".into()
                } else {
                    mailbox
                },
            },
            Item {
                name: "file path".into(),
                answer: if path.is_empty() {
                    "not named in the evidence".into()
                } else {
                    path
                },
            },
        ];
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            "remove mailbox export requests",
            &record,
            &change,
        ));
        b.push(a);
    }

    // "Mailbox Import Export" role assignments.
    let mut roles: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in b.findings(|f| {
        f.rule_id == "EXH-EV-7"
            || (f.rule_id == "EXH-EV-20"
                && text_of(f)
                    .to_ascii_lowercase()
                    .contains("new-managementroleassignment"))
    }) {
        let t = text_of(&b.server.findings[i]);
        let user = param(&t, "User")
            .or_else(|| b.server.findings[i].entities.account.clone())
            .unwrap_or_default();
        roles.entry(user).or_default().push(i);
    }
    for (user, idx) in roles {
        let (record, change) = if user.is_empty() {
            (
                "Get-ManagementRoleAssignment -Role 'Mailbox Import Export' | Select-Object Identity,Role,RoleAssigneeName,RoleAssigneeType,WhenCreated".to_string(),
                "Write-Output 'exhunt: the evidence does not name the assignee: review the assignments recorded above and remove the attacker''s with Remove-ManagementRoleAssignment'".to_string(),
            )
        } else {
            (
                format!(
                    "Get-ManagementRoleAssignment -Role 'Mailbox Import Export' -RoleAssignee {} | Select-Object Identity,Role,RoleAssigneeName,RoleAssigneeType,WhenCreated",
                    quote(&user)
                ),
                "foreach ($ra in $before) {\n    Remove-ManagementRoleAssignment -Identity $ra.Identity -Confirm:$false\n    Write-Output ('exhunt: removed role assignment ' + $ra.Identity)\n}".to_string(),
            )
        };
        let mut a = action(
            ActionKind::Configuration,
            Urgency::Immediate,
            format!(
                "Remove the \"Mailbox Import Export\" role assignment{}",
                if user.is_empty() { String::new() } else { format!(" of {user}") }
            ),
            "the role lets its holder export any mailbox to a file; ProxyShell assigns it to write a web shell through an export".to_string(),
            &idx,
        );
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            "remove a Mailbox Import Export role assignment",
            &record,
            &change,
        ));
        b.push(a);
    }

    // Transport agents.
    let mut agents: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in b.findings(|f| matches!(f.rule_id.as_str(), "EXH-EV-17" | "EXH-EV-19")) {
        let t = text_of(&b.server.findings[i]);
        let name = param(&t, "Name")
            .or_else(|| param(&t, "Identity"))
            .unwrap_or_default();
        agents.entry(name).or_default().push(i);
    }
    for (name, idx) in agents {
        let (record, change) = if name.is_empty() {
            (
                "Get-TransportAgent | Select-Object Identity,Enabled,Priority".to_string(),
                "Write-Output 'exhunt: the evidence does not name the agent: review the agents recorded above and disable the attacker''s with Disable-TransportAgent'".to_string(),
            )
        } else {
            (
                format!("Get-TransportAgent -Identity {} | Select-Object Identity,Enabled,Priority", quote(&name)),
                "foreach ($ta in $before) {\n    Disable-TransportAgent -Identity $ta.Identity -Confirm:$false\n    Write-Output ('exhunt: disabled transport agent ' + $ta.Identity + '; restart MSExchangeTransport')\n}".to_string(),
            )
        };
        let mut a = action(
            ActionKind::Configuration,
            Urgency::High,
            if name.is_empty() { "Disable the transport agent the attacker installed".to_string() } else { format!("Disable the transport agent {name}") },
            "a transport agent runs inside the transport service and sees every message; an administrator's change explains it too, so confirm it is not yours".to_string(),
            &idx,
        );
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            "disable a transport agent",
            &record,
            &change,
        ));
        b.push(a);
    }

    // Accounts added to Exchange or administrators' groups (4728/4756: domain groups; 4732: a
    // local group of the server, or a domain-local group on a domain controller).
    let mut members: BTreeMap<(String, String, bool), Vec<usize>> = BTreeMap::new();
    for i in b.findings(|f| f.rule_id == "EXH-EV-18") {
        let f = &b.server.findings[i];
        let t = text_of(f);
        let member = field(&t, "MemberName")
            .or_else(|| field(&t, "MemberSid"))
            .or_else(|| f.entities.account.clone())
            .unwrap_or_default();
        let group = field(&t, "TargetUserName").unwrap_or_default();
        let domain = field(&t, "TargetDomainName").unwrap_or_default();
        let host = b.server.name.split('.').next().unwrap_or_default();
        let local = f.evidence.excerpt.contains(" 4732 (")
            && (domain.is_empty()
                || domain.eq_ignore_ascii_case("Builtin")
                || domain.eq_ignore_ascii_case(host));
        members.entry((group, member, local)).or_default().push(i);
    }
    for ((group, member, local), idx) in members {
        let known = !group.is_empty() && !member.is_empty();
        let (record, change) = match (known, local) {
            (true, false) => (
                format!("Import-Module ActiveDirectory; $exhuntGroup = {}; $exhuntMember = {}; Get-ADGroupMember -Identity $exhuntGroup | Select-Object SamAccountName,DistinguishedName,SID,objectClass", quote(&group), quote(&member)),
                "Remove-ADGroupMember -Identity $exhuntGroup -Members $exhuntMember -Confirm:$false\nWrite-Output 'exhunt: member removed; the membership before is in the before-state file'".to_string(),
            ),
            (true, true) => (
                format!("$exhuntGroup = {}; $exhuntMember = {}; Get-LocalGroupMember -Group $exhuntGroup | Select-Object Name,SID,ObjectClass,PrincipalSource", quote(&group), quote(&member)),
                "Remove-LocalGroupMember -Group $exhuntGroup -Member $exhuntMember\nWrite-Output 'exhunt: member removed; the membership before is in the before-state file'".to_string(),
            ),
            (false, _) => (
                "Import-Module ActiveDirectory; Get-ADGroupMember -Identity 'Organization Management' | Select-Object SamAccountName,DistinguishedName,SID,objectClass".to_string(),
                "Write-Output 'exhunt: the evidence does not name both the group and the member: review the groups by hand'".to_string(),
            ),
        };
        let mut a = action(
            ActionKind::Configuration,
            Urgency::High,
            if known { format!("Remove {member} from the group {group}") } else { "Remove the account the attacker added to an Exchange or administrators' group".to_string() },
            "an account added to an Exchange or administrators' group keeps the attacker's access after the web shells are gone; an administrator's change explains it too, so confirm it".to_string(),
            &idx,
        );
        a.powershell = Some(script(
            b.plan_id,
            ACTION_PLACEHOLDER,
            "remove a group member",
            &record,
            &change,
        ));
        b.push(a);
    }
}

/// `Name=value` in an event excerpt (`Channel Id (Provider); Name=value; Name=value`): the
/// value runs to the next `; ` (a distinguished name keeps its commas, a group its spaces).
fn field(text: &str, name: &str) -> Option<String> {
    let key = format!("; {name}=");
    let at = text.find(&key)? + key.len();
    let rest = &text[at..];
    let v = rest.split("; ").next()?.trim();
    (!v.is_empty() && v != "-").then(|| v.to_string())
}

fn credentials(b: &mut Builder<'_>) -> bool {
    // Credentials are reset on an LSASS dump (by its name, or the events of one being made)
    // or on a compromised verdict; a crash dump of another process on an inconclusive verdict
    // is not reason enough.
    let lsass = b.findings(lsass_dump);
    let compromised = b.server.verdict == VerdictKind::Compromised;
    if lsass.is_empty() && !compromised {
        if !b
            .findings(|f| f.kind == ArtefactKind::MemoryDump || f.stage == Stage::WebShellUse)
            .is_empty()
        {
            b.cannot_know.push(
                "whether credentials were taken: a dump of another process or a web shell finding is in the evidence, but no LSASS dump and no compromised verdict; reset them if the investigation confirms either".to_string(),
            );
        }
        return false;
    }
    let dumps = b.findings(|f| {
        lsass_dump(f) || (compromised && f.kind == ArtefactKind::MemoryDump && !is_review(f))
    });
    let system = b.findings(|f| {
        f.rule_id == "EXH-EV-27"
            || f.rule_id == "EXH-EV-6"
            || (!is_review(f)
                && (f.stage == Stage::WebShellUse
                    || (f.kind == ArtefactKind::WebFile && f.stage == Stage::Persistence)))
    });
    if dumps.is_empty() && system.is_empty() {
        if b.server.verdict == VerdictKind::Compromised {
            b.cannot_know.push(
                "whether credentials were taken: the evidence shows no dump and no code run on the server; a compromise through an exploit alone may still have read them".to_string(),
            );
        }
        return false;
    }
    let mut why = Vec::new();
    if !dumps.is_empty() {
        why.push(
            "a memory dump (LSASS holds the credentials of every account logged on since boot)",
        );
    }
    if !system.is_empty() {
        why.push("a web shell (planted, used, or written by a mailbox export), which runs in an Exchange application pool as LocalSystem");
    }
    let mut idx: Vec<usize> = dumps
        .iter()
        .chain(&system)
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Accounts the evidence names.
    let mut named: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, f) in b.server.findings.iter().enumerate() {
        let t = text_of(f);
        for v in [
            f.entities.account.clone(),
            param(&t, "User"),
            param(&t, "Mailbox"),
            param(&t, "Identity").filter(|v| v.contains('@') || v.contains('\\')),
        ]
        .into_iter()
        .flatten()
        {
            named.entry(v).or_default().insert(i);
        }
    }
    // ProxyShell's X-Rps-CAT token names the account the attacker impersonated.
    for (i, f) in b.server.findings.iter().enumerate() {
        if let Some(acct) = rps_cat_account(&f.evidence.excerpt) {
            named.entry(acct).or_default().insert(i);
        }
    }
    let mut items = Vec::new();
    for (acct, fs) in &named {
        let ids: Vec<String> = fs.iter().map(|&i| fid(i)).collect();
        idx.extend(fs.iter().copied());
        items.push(Item {
            name: acct.clone(),
            answer: format!(
                "named in the evidence ({}): reset its password and revoke its sessions",
                ids.join(", ")
            ),
        });
    }
    idx.sort_unstable();
    idx.dedup();
    items.push(Item {
        name: format!(
            "{}$ (machine account)",
            b.server.name.split('.').next().unwrap_or_default().to_uppercase()
        ),
        answer: "reset (Reset-ComputerMachinePassword on the server, or rebuild and rejoin): the dump or SYSTEM code holds it".to_string(),
    });
    items.push(Item {
        name: "Exchange service and administrator accounts".to_string(),
        answer: "reset every account Exchange runs as or that administers it (Organization Management members); the evidence does not list them".to_string(),
    });
    items.push(Item {
        name: "krbtgt".to_string(),
        answer: "reset twice, with replication between the resets, so that forged Kerberos tickets stop working".to_string(),
    });
    items.push(Item {
        name: "every account that logged on to the server".to_string(),
        answer: "cannot be listed from this evidence: it needs the Security log's logons (4624) since the server was last started, or the dump's content, which exhunt does not read".to_string(),
    });
    b.cannot_know.push(
        "which accounts logged on to the server: their credentials were in memory; the Security log's logon events (4624) or the dump's content would tell, and this plan does not read them".to_string(),
    );
    let mut a = action(
        ActionKind::Credentials,
        Urgency::High,
        "Reset the credentials the attacker could have taken".to_string(),
        format!(
            "{}: every credential on the server must be treated as known to the attacker",
            why.join("; ")
        ),
        &idx,
    );
    a.items = items;
    b.push(a);
    true
}

fn patch(b: &mut Builder<'_>, builds: &BuildTable) -> bool {
    // The newest build the logs show.
    let mut seen: Vec<(Option<exhunt_model::Timestamp>, String)> = Vec::new();
    for v in &b.server.verdicts {
        for bs in &v.builds_seen {
            if !seen.iter().any(|(_, s)| *s == bs.build) {
                seen.push((bs.first_seen, bs.build.clone()));
            }
        }
    }
    seen.sort();
    let Some((first, build)) = seen.last().cloned() else {
        b.cannot_know.push("the Exchange build: the logs show none (no #Version: line or build field); run Get-ExchangeServer | Format-List Name,AdminDisplayVersion and look it up in rules/builds/".to_string());
        return false;
    };
    let Some(v) = Version::parse(&build) else {
        return false;
    };
    let mut items = vec![Item {
        name: "build seen".to_string(),
        answer: format!(
            "{build}{} — the newest build the logs show; check the build now with Get-ExchangeServer before acting",
            first
                .map(|t| format!(" (first seen {})", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default()
        ),
    }];
    let id = builds.identify(&v);
    if let Some(id) = &id {
        items.push(Item {
            name: "identified".to_string(),
            answer: id.to_string(),
        });
    }
    let needed = [
        (Update::Mar21SU, "ProxyLogon"),
        (Update::May21SU, "ProxyShell"),
        (Update::Nov22SU, "ProxyNotShell"),
    ];
    let mut open = Vec::new();
    for (u, name) in needed {
        let ans = builds.check(&v, u);
        let state = match ans.state {
            Patch::Patched => "fixed",
            Patch::Vulnerable => {
                open.push(u);
                "OPEN"
            }
            Patch::Indeterminate => {
                open.push(u);
                "cannot tell"
            }
        };
        items.push(Item {
            name: format!("{name} ({} {})", u.name(), u.kb()),
            answer: format!("{state}: {}", ans.reason),
        });
    }
    let product = id.as_ref().map(|i| i.product.clone()).unwrap_or_default();
    let support = support_end(&product);
    if open.is_empty() && support.is_none() {
        return false;
    }
    if let Some((end, successor)) = support {
        items.push(Item {
            name: "support".to_string(),
            answer: format!(
                "{product} is out of support since {end} (Microsoft lifecycle), whatever the campaigns above say: security updates after that date came only through Microsoft's paid, time-limited Extended Security Update program; {successor}"
            ),
        });
    }
    // Security updates only: a hotfix update (`HU`) fixes bugs, not vulnerabilities.
    let security = |u: &str| u.contains("SU") && !u.contains("HU");
    // The newest update of the same CU that fixes all of them, else the newest CU of the product.
    let parts = v.parts();
    let all_fixed = |row_build: &str| {
        Version::parse(row_build).is_some_and(|rv| {
            open.iter()
                .all(|&u| builds.check(&rv, u).state == Patch::Patched)
        })
    };
    let same_cu = builds
        .rows()
        .filter(|r| Version::parse(&r.build).is_some_and(|rv| rv.parts()[..3] == parts[..3]))
        .filter(|r| security(&r.update) && all_fixed(&r.build))
        .max_by_key(|r| Version::parse(&r.build).map(|rv| rv.parts()));
    let install = match same_cu {
        Some(r) => format!(
            "{} {} {} (build {}): the newest security update of the CU the server runs",
            r.product, r.cu, r.update, r.build
        ),
        None => {
            let newest = builds
                .rows()
                .filter(|r| r.product == product && security(&r.update))
                .max_by_key(|r| Version::parse(&r.build).map(|rv| rv.parts()));
            match newest {
                Some(r) if open.is_empty() => format!(
                    "the newest security update of {} in the build table is {} {} (build {})",
                    r.product, r.cu, r.update, r.build
                ),
                Some(r) => format!(
                    "no security update of the CU the server runs fixes every campaign: move to {} {} and install {} (build {})",
                    r.product, r.cu, r.update, r.build
                ),
                None => "the build table does not cover this product: look up the supported CU and its newest security update".to_string(),
            }
        }
    };
    items.push(Item {
        name: "install".to_string(),
        answer: match support {
            Some((_, successor)) => format!("{install}; then {successor}"),
            None => install,
        },
    });
    // The emergency mitigation, campaign by campaign: what exists, what is configured, how weak.
    for &u in &open {
        let (campaign, exists) = match u {
            Update::Mar21SU => (Campaign::ProxyLogon, true),
            Update::Nov22SU => (Campaign::ProxyNotShell, true),
            _ => (Campaign::ProxyShell, false),
        };
        let configured: Vec<&exhunt_model::Mitigation> = b
            .server
            .mitigations
            .iter()
            .filter(|m| m.campaign == campaign)
            .collect();
        let weak: Vec<String> = configured
            .iter()
            .filter_map(|m| m.weakness.as_ref().map(|w| format!("{}: {w}", m.rule)))
            .collect();
        let names = configured
            .iter()
            .map(|m| m.rule.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
        let answer = match (exists, configured.is_empty(), weak.is_empty()) {
            (false, true, _) => "no URL Rewrite mitigation was ever published for it: only the update closes it; keep the server off the internet until it is installed".to_string(),
            (false, false, _) => format!(
                "no mitigation was published for it; the rules configured ({names}) are for other campaigns or local: only the update closes it"
            ),
            (true, true, _) => "a URL Rewrite mitigation exists (EOMT/EEMS) and none is in the configuration read: apply it, or keep the server off the internet, until the update is installed".to_string(),
            (true, false, true) => format!(
                "configured ({names}): keep it until the update is installed"
            ),
            (true, false, false) => format!(
                "configured but weak ({}): replace it with the current rules, or keep the server off the internet, until the update is installed",
                weak.join("; ")
            ),
        };
        items.push(Item {
            name: format!("emergency mitigation, {}", campaign.label()),
            answer,
        });
    }
    items.push(Item {
        name: "after a CU upgrade".to_string(),
        answer: "a CU upgrade rewrites IIS configuration and removes the mitigation's URL Rewrite rules (CSS-Exchange #378): check them again, and rescan".to_string(),
    });
    let idx: Vec<usize> = b
        .findings(|f| f.stage >= Stage::ExploitSuccess && f.kind.is_log())
        .into_iter()
        .take(10)
        .collect();
    let mut a = action(
        ActionKind::Patch,
        Urgency::High,
        if open.is_empty() {
            "Move to a supported Exchange".to_string()
        } else {
            "Install the security update".to_string()
        },
        if open.is_empty() {
            "the product the logs show is out of support: it gets no security update any more"
                .to_string()
        } else {
            "the build the logs show is open to a campaign in scope; rebuilding from trusted media must end at a fixed build too".to_string()
        },
        &idx,
    );
    a.items = items;
    b.push(a);
    true
}

/// End of support of an Exchange product, and its successor. Source: Microsoft's lifecycle
/// pages (Exchange Server 2013: 2023-04-11; Exchange Server 2016 and 2019: 2025-10-14;
/// Exchange Server Subscription Edition succeeds them).
fn support_end(product: &str) -> Option<(&'static str, &'static str)> {
    match product {
        "Exchange 2010" => Some((
            "2020-10-13",
            "move to Exchange Server Subscription Edition (SE) (through a supported version)",
        )),
        "Exchange 2013" => Some((
            "2023-04-11",
            "move to Exchange Server Subscription Edition (SE) (through Exchange 2019)",
        )),
        "Exchange 2016" | "Exchange 2019" => Some((
            "2025-10-14",
            "move to Exchange Server Subscription Edition (SE), its successor",
        )),
        _ => None,
    }
}

fn private(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v)) => v.is_private() || v.is_loopback() || v.is_link_local(),
        Ok(std::net::IpAddr::V6(v)) => v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => true,
    }
}

fn directive(b: &mut Builder<'_>, cred: bool, patch: bool) {
    let compromised = b.server.verdict == VerdictKind::Compromised;
    let attacker = b.findings(|f| {
        f.stage > Stage::Scan
            && f.entities
                .client_ip
                .as_deref()
                .is_some_and(|ip| !private(ip))
    });
    let ips: BTreeSet<&str> = attacker
        .iter()
        .filter_map(|&i| b.server.findings[i].entities.client_ip.as_deref())
        .collect();
    let ecp = b.findings(|f| {
        f.kind == ArtefactKind::IisLog
            && f.entities.url.as_deref().is_some_and(|u| {
                let u = u.to_ascii_lowercase();
                u.starts_with("/ecp/") || u.starts_with("/owa/")
            })
            && f.entities.status.is_some_and(|s| (200..400).contains(&s))
    });
    let ips_s = ips.iter().copied().collect::<Vec<_>>().join(", ");
    let mut items = vec![
        Item {
            name: "internet-facing".to_string(),
            answer: if ips.is_empty() { "unknown: no finding names a public client address".to_string() } else { format!("yes: attack requests came from {ips_s}") },
        },
        Item {
            name: "OWA/ECP running".to_string(),
            answer: if ecp.is_empty() { "unknown from the findings".to_string() } else { format!("yes: /ecp or /owa answered requests ({})", ecp.iter().take(3).map(|&i| fid(i)).collect::<Vec<_>>().join(", ")) },
        },
        Item {
            name: "disconnect".to_string(),
            answer: if compromised { "required (compromised); the evidence cannot show whether it was done".to_string() } else { "not required by the verdict; the evidence cannot show the current state".to_string() },
        },
        Item {
            name: "memory and disk image".to_string(),
            answer: "unknown from the evidence: take them before cleaning (a dump found on disk is the attacker's, not an image); `exhunt collect` preserves the triage files".to_string(),
        },
        Item {
            name: "rebuild OS and Exchange from trusted media".to_string(),
            answer: if compromised { "required before the server rejoins the domain (compromised)".to_string() } else { "not required by the verdict".to_string() },
        },
        Item {
            name: "remove actor accounts and persistence".to_string(),
            answer: "see {quarantine} and {configuration}; scheduled tasks, local accounts and services are not in this evidence".to_string(),
        },
        Item {
            name: "reset credentials".to_string(),
            answer: if cred { "see {credentials}".to_string() } else { "no dump or SYSTEM code in the evidence; reset if the investigation finds either".to_string() },
        },
        Item {
            name: "patch".to_string(),
            answer: if patch { "see {patch}".to_string() } else { "no open campaign by the build the logs show (or no build seen)".to_string() },
        },
        Item {
            name: "report indicators".to_string(),
            answer: if compromised || !attacker.is_empty() {
                format!("report as an incident: the client addresses ({}), the files quarantined with their SHA-256, the accounts named", if ips_s.is_empty() { "none public".to_string() } else { ips_s.clone() })
            } else {
                "nothing to report from this evidence".to_string()
            },
        },
        Item {
            name: "re-scan".to_string(),
            answer: "rescan weekly for four weeks (`exhunt remediate verify`) and keep triage results at least six months".to_string(),
        },
    ];
    if b.actions.iter().all(|a| a.kind != ActionKind::Quarantine) {
        items[5].answer = "see {configuration}; no file to quarantine was found; scheduled tasks, local accounts and services are not in this evidence".to_string();
    }
    if b.actions
        .iter()
        .all(|a| a.kind != ActionKind::Configuration)
    {
        items[5].answer = items[5]
            .answer
            .replace(" and {configuration}", "")
            .replace("see {configuration}; ", "");
    }
    b.cannot_know.push(
        "whether the server was disconnected, imaged or rebuilt since the evidence was taken"
            .to_string(),
    );
    let mut a = action(
        ActionKind::Directive,
        if compromised {
            Urgency::Immediate
        } else {
            Urgency::Normal
        },
        "CISA ED 21-02 checklist for this server".to_string(),
        format!(
            "verdict {}: what the directive asks, with what the evidence already answers",
            b.server.verdict.label()
        ),
        &attacker.iter().take(5).copied().collect::<Vec<_>>(),
    );
    a.items = items;
    b.push(a);
}

/// [`relative_to`] for the other modules.
pub(crate) fn relative_to_pub(path: &str, targets: &[String]) -> Option<String> {
    relative_to(path, targets)
}

/// The logon name inside a ProxyShell `X-Rps-CAT` token (base64 of a CommonAccessToken: a
/// version, then typed fields; `L` is the logon name, one length byte, then the name).
pub(crate) fn rps_cat_account(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("x-rps-cat=")? + "x-rps-cat=".len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=' | '%'))
        .collect();
    let token = token
        .replace("%2B", "+")
        .replace("%2b", "+")
        .replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%3D", "=")
        .replace("%3d", "=");
    let bytes = base64_decode(&token)?;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'L' {
            // A token cut short (a log field's limit) keeps the bytes it has.
            let n = usize::from(bytes[i + 1]);
            let end = (i + 2 + n).min(bytes.len());
            if let Some(name) = bytes.get(i + 2..end)
                && name.len() > 2
                && name.iter().all(|b| b.is_ascii_graphic())
                && (name.contains(&b'@') || name.contains(&b'\\'))
            {
                return Some(String::from_utf8_lossy(name).into_owned());
            }
        }
        i += 1;
    }
    None
}

/// Base64 (standard or URL alphabet, padding optional); `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
