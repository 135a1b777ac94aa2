//! Plain data types of an exhunt scan, shared by every other crate.
//!
//! Why a crate of its own: the sources, the checks and the renderers must agree on what a finding,
//! a piece of evidence, a coverage entry and a verdict are, without knowing each other. Nothing
//! here does I/O; everything is `serde`-serialisable because the JSON result *is* this model
//! (see `schema/scan-result.v1.json`, kept in step with these types by a test).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub mod event;
pub mod time;

pub use event::{Val, WinEvent};

/// The version of the JSON result schema written by this build.
pub const SCHEMA_VERSION: &str = "1.6";

/// A point in time, always UTC.
pub type Timestamp = DateTime<Utc>;

/// The kinds of artefact a scan knows how to recognise.
///
/// A file is *claimed* by one of these kinds (by its path and by its content), or it is listed in
/// the coverage ledger as skipped with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtefactKind {
    /// Exchange front-end proxy ("CAFE") log, `Logging\HttpProxy\<Protocol>\*.log`.
    HttpProxyLog,
    /// Exchange ECP server log, `Logging\ECP\Server\*.log`.
    EcpServerLog,
    /// Exchange OAB generator log, `Logging\OABGeneratorLog\*.log`.
    OabGeneratorLog,
    /// IIS W3C extended log, `inetpub\logs\LogFiles\W3SVC*\*.log`.
    IisLog,
    /// Exchange remote PowerShell proxy log, `Logging\CmdletInfra\Powershell-Proxy\Http\
    /// Rps_Http_*.log`: who ran remote PowerShell, through which front end, with which client.
    RpsHttpLog,
    /// Windows event log (`.evtx`).
    Evtx,
    /// Windows events exported as JSON (evtx_dump, Winlogbeat/ECS, flattened NXLog-style).
    EventExport,
    /// A file in a folder IIS serves (web roots: `aspnet_client`, `FrontEnd\HttpProxy\owa\auth`,
    /// `inetpub\wwwroot`, Temporary ASP.NET Files…): where web shells are dropped.
    WebFile,
    /// IIS configuration (`applicationHost.config`): sites, applications, virtual directories
    /// and URL Rewrite rules.
    IisConfig,
    /// A Windows minidump (`MDMP` magic), wherever it is.
    MemoryDump,
    /// An archive in a place where attackers stage data (ProgramData, `C:\root`, temp folders,
    /// web roots).
    Archive,
    /// Any other file, looked at only with `--deep`.
    File,
}

impl ArtefactKind {
    /// All kinds, in display order.
    pub const ALL: [ArtefactKind; 12] = [
        ArtefactKind::HttpProxyLog,
        ArtefactKind::EcpServerLog,
        ArtefactKind::OabGeneratorLog,
        ArtefactKind::IisLog,
        ArtefactKind::RpsHttpLog,
        ArtefactKind::Evtx,
        ArtefactKind::EventExport,
        ArtefactKind::WebFile,
        ArtefactKind::IisConfig,
        ArtefactKind::MemoryDump,
        ArtefactKind::Archive,
        ArtefactKind::File,
    ];

    /// Whether the kind is a log read line by line (the others are files looked at whole).
    pub fn is_log(self) -> bool {
        matches!(
            self,
            ArtefactKind::HttpProxyLog
                | ArtefactKind::EcpServerLog
                | ArtefactKind::OabGeneratorLog
                | ArtefactKind::IisLog
                | ArtefactKind::RpsHttpLog
                | ArtefactKind::Evtx
                | ArtefactKind::EventExport
        )
    }

    /// A short human name.
    pub fn label(self) -> &'static str {
        match self {
            ArtefactKind::HttpProxyLog => "HttpProxy logs",
            ArtefactKind::EcpServerLog => "ECP server logs",
            ArtefactKind::OabGeneratorLog => "OAB generator logs",
            ArtefactKind::IisLog => "IIS W3C logs",
            ArtefactKind::RpsHttpLog => "remote PowerShell (Rps_Http) logs",
            ArtefactKind::Evtx => "Windows event logs",
            ArtefactKind::EventExport => "event log exports",
            ArtefactKind::WebFile => "web-root files",
            ArtefactKind::IisConfig => "IIS configuration",
            ArtefactKind::MemoryDump => "memory dumps",
            ArtefactKind::Archive => "staged archives",
            ArtefactKind::File => "other files",
        }
    }
}

impl fmt::Display for ArtefactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The attack campaigns exhunt judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Campaign {
    /// ProxyLogon / HAFNIUM, March 2021: CVE-2021-26855, -26857, -26858, -27065.
    ProxyLogon,
    /// ProxyShell, August 2021: CVE-2021-34473, -34523, -31207 (pre-auth `autodiscover.json`
    /// SSRF to the PowerShell back end, mailbox exports written as web shells).
    ProxyShell,
    /// ProxyNotShell and OWASSRF, 2022: CVE-2022-41040, -41082 (-41080): the same SSRF shape,
    /// authenticated, through `autodiscover.json` or OWA.
    ProxyNotShell,
    /// What every campaign leaves on disk: web shells, LSASS dumps, staged archives, mailbox
    /// exports. Judged from files, whichever vulnerability let the attacker in.
    PostExploitation,
}

impl Campaign {
    /// All campaigns this build judges.
    pub const ALL: [Campaign; 4] = [
        Campaign::ProxyLogon,
        Campaign::ProxyShell,
        Campaign::ProxyNotShell,
        Campaign::PostExploitation,
    ];

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Campaign::ProxyLogon => "ProxyLogon (HAFNIUM)",
            Campaign::ProxyShell => "ProxyShell",
            Campaign::ProxyNotShell => "ProxyNotShell / OWASSRF",
            Campaign::PostExploitation => "Web shells, dumps and post-exploitation",
        }
    }

    /// Start of the exposure window: the first known exploitation (research spec §9/§11;
    /// Volexity saw the first exploitation on 2021-01-03).
    pub fn window_start(self) -> Timestamp {
        match self {
            // Files carry no window of their own; the earliest campaign's start is used for
            // "file time inside the exposure window".
            Campaign::ProxyLogon | Campaign::PostExploitation => {
                Utc.with_ymd_and_hms(2021, 1, 3, 0, 0, 0).unwrap()
            }
            // Orange Tsai's Black Hat talk (5 August 2021); mass scanning from 8 August.
            Campaign::ProxyShell => Utc.with_ymd_and_hms(2021, 8, 5, 0, 0, 0).unwrap(),
            // GTSC saw the first exploitation in early August 2022 (published 28 September).
            Campaign::ProxyNotShell => Utc.with_ymd_and_hms(2022, 8, 1, 0, 0, 0).unwrap(),
        }
    }

    /// Artefact kinds the campaign's log checks need before "no evidence" can be said.
    pub fn required_kinds(self) -> &'static [ArtefactKind] {
        match self {
            Campaign::ProxyLogon => &[
                ArtefactKind::HttpProxyLog,
                ArtefactKind::EcpServerLog,
                ArtefactKind::OabGeneratorLog,
            ],
            // The SSRF requests of both reach the front end's IIS log, whichever back end
            // they target.
            Campaign::ProxyShell | Campaign::ProxyNotShell => &[ArtefactKind::IisLog],
            Campaign::PostExploitation => &[ArtefactKind::WebFile],
        }
    }
}

impl fmt::Display for Campaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How far an attack got, in kill-chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Vulnerability scanning or probing: not an exploitation attempt.
    Scan,
    /// An exploitation attempt without evidence that it worked.
    ExploitAttempt,
    /// Evidence that an exploit step succeeded.
    ExploitSuccess,
    /// A persistence artefact: a web shell written, a configuration planted.
    Persistence,
    /// Use of a planted web shell.
    WebShellUse,
    /// Post-exploitation: dumps, staging, new accounts.
    PostExploitation,
}

impl Stage {
    /// Whether a finding at this stage, with enough confidence, means compromise.
    pub fn is_compromise(self) -> bool {
        self >= Stage::ExploitSuccess
    }

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Scan => "scan",
            Stage::ExploitAttempt => "exploit attempt",
            Stage::ExploitSuccess => "exploit success",
            Stage::Persistence => "persistence",
            Stage::WebShellUse => "web-shell use",
            Stage::PostExploitation => "post-exploitation",
        }
    }
}

/// What became of a request the attacker sent: told apart so that a server that refused every
/// attempt does not read like one whose logs cannot say (CSS-Exchange #312 asked for a visible
/// "failed exploit" class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The server served it: the back end answered, the shell ran.
    Succeeded,
    /// The server refused it or it could not work: an error status, a back end that shows the
    /// failure (an SSRF that reached only autodiscover), a build that was not vulnerable.
    Refused,
    /// The logs cannot tell whether it worked.
    Unknown,
}

/// The stage as a reader should see it: a refused attempt is a failed attempt, one of unknown
/// outcome says so.
pub fn stage_label(stage: Stage, outcome: Option<Outcome>) -> &'static str {
    match (stage, outcome) {
        (Stage::ExploitAttempt, Some(Outcome::Refused)) => "failed attempt",
        (Stage::ExploitAttempt, Some(Outcome::Unknown)) => "attempt (unknown)",
        (s, _) => s.label(),
    }
}

impl Outcome {
    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Refused => "refused",
            Outcome::Unknown => "outcome unknown",
        }
    }
}

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Context, no action needed by itself.
    Info,
    /// Worth a look.
    Low,
    /// Likely malicious.
    Medium,
    /// Malicious.
    High,
    /// Malicious and shows the attacker reached code execution or persistence.
    Critical,
}

/// Confidence that a finding means what its title says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Circumstantial.
    Low,
    /// Probable.
    Medium,
    /// Near certain.
    High,
}

/// Metadata of a rule (a check), loaded from the built-in rule pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMeta {
    /// Stable id, `EXH-<campaign>-<n>`.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Campaign the rule belongs to.
    pub campaign: Campaign,
    /// CVEs the rule evidences.
    pub cves: Vec<String>,
    /// MITRE ATT&CK technique id.
    pub attack: String,
    /// Default severity.
    pub severity: Severity,
    /// Default stage (a check may classify a hit into another stage).
    pub stage: Stage,
    /// Section of the detection spec the rule implements, e.g. `C-26855-A`.
    pub spec: String,
    /// Description: what it looks for and why.
    pub description: String,
    /// Known false positives.
    #[serde(default)]
    pub false_positives: String,
    /// References (URLs, spec sections).
    #[serde(default)]
    pub references: Vec<String>,
    /// Confidence of a match, for rules whose checks do not decide it per finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// The rule whose story step this rule's findings join: the same change seen in another
    /// artefact (the ECP log and the MSExchange Management event of one ExternalUrl change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joins: Option<String>,
}

/// Where a finding was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Path of the artefact as given on the command line; for archive members
    /// `archive.zip!inner/path`.
    pub path: String,
    /// 1-based line (or record) number.
    pub line: u64,
    /// Byte offset of the line in the (decoded) file.
    pub offset: u64,
    /// The raw line, cut to a bounded length.
    pub excerpt: String,
}

/// Entities a finding names; used to join findings into a story.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entities {
    /// Client IP address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_ip: Option<String>,
    /// User agent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    /// Account.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    /// Requested URL (path and query).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    /// HTTP method of the request.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method: Option<String>,
    /// HTTP status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    /// The SSRF target or back-end path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// A file path (written, downloaded, requested), as Windows path or URL path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file_path: Option<String>,
    /// Request or correlation id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    /// Server host name named in the log line.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server: Option<String>,
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (schema 1.6): the same evidence gives the same id in every scan of it, from
    /// any mount point, copy or triage package: a hash of the rule, the file's name and folder,
    /// the line, its offset and its excerpt (`f-` and 16 hex digits; `-2`, `-3`… when one
    /// server has the same twice). Empty in results before 1.6.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Rule id (see [`RuleMeta`]).
    pub rule_id: String,
    /// Title (may be more specific than the rule title).
    pub title: String,
    /// Campaign.
    pub campaign: Campaign,
    /// CVEs evidenced.
    pub cves: Vec<String>,
    /// ATT&CK technique.
    pub attack: String,
    /// Severity.
    pub severity: Severity,
    /// Confidence.
    pub confidence: Confidence,
    /// Stage in the attack.
    pub stage: Stage,
    /// When it happened (from the log record), if known.
    pub timestamp: Option<Timestamp>,
    /// Where it was seen.
    pub evidence: Evidence,
    /// What it names.
    pub entities: Entities,
    /// Artefact kind of the evidence.
    pub kind: ArtefactKind,
    /// The rule whose story step this finding joins (see [`RuleMeta::joins`]), or the finding
    /// of the same request in a more specific log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joins: Option<String>,
    /// For requests: whether the server served, refused, or may have served it (schema 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// The four answers a scan can give for a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Every artefact the checks need was read and spans the exposure window; nothing found.
    NoEvidence,
    /// No findings, but coverage is short: the answer cannot be "no evidence".
    Inconclusive,
    /// Exploitation attempts, no evidence of success.
    Attempted,
    /// Evidence that an exploit succeeded or that a persistence artefact exists.
    Compromised,
}

impl VerdictKind {
    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::NoEvidence => "no evidence",
            VerdictKind::Inconclusive => "inconclusive",
            VerdictKind::Attempted => "attempted",
            VerdictKind::Compromised => "compromised",
        }
    }

    /// Process exit code for this verdict (README: 0 no evidence, 1 findings, 3 inconclusive).
    pub fn exit_code(self) -> i32 {
        match self {
            VerdictKind::NoEvidence => 0,
            VerdictKind::Attempted | VerdictKind::Compromised => 1,
            VerdictKind::Inconclusive => 3,
        }
    }

    /// The worst of several verdicts (`inconclusive` when there are none: nothing was judged).
    pub fn worst(verdicts: impl IntoIterator<Item = VerdictKind>) -> VerdictKind {
        verdicts
            .into_iter()
            .max_by_key(|v| v.rank())
            .unwrap_or(VerdictKind::Inconclusive)
    }

    /// Rank used to combine verdicts: findings beat inconclusive beats no evidence.
    pub fn rank(self) -> u8 {
        match self {
            VerdictKind::NoEvidence => 0,
            VerdictKind::Inconclusive => 1,
            VerdictKind::Attempted => 2,
            VerdictKind::Compromised => 3,
        }
    }
}

/// The verdict for one campaign on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Campaign judged.
    pub campaign: Campaign,
    /// The answer.
    pub verdict: VerdictKind,
    /// One sentence a stressed administrator understands.
    pub summary: String,
    /// Why: what was found, or what was missing.
    pub reasons: Vec<String>,
    /// Start of the exposure window used.
    pub window_start: Timestamp,
    /// End of the exposure window used (the patch time when known, else the end of the logs).
    pub window_end: Option<Timestamp>,
    /// First evidence of the campaign, if any.
    pub first_evidence: Option<Timestamp>,
    /// Last evidence of the campaign, if any.
    pub last_evidence: Option<Timestamp>,
    /// Build numbers seen in the logs (`#Version:`), with the first time each was seen.
    pub builds_seen: Vec<BuildSeen>,
    /// Whether the server was patched before the first evidence, when it can be told.
    pub patched_before_first_evidence: Option<bool>,
}

/// A build number seen in log directives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSeen {
    /// Build, e.g. `15.1.2176.2`.
    pub build: String,
    /// First time seen.
    pub first_seen: Option<Timestamp>,
    /// Whether this build has the campaign's fix (`None` when the build is not in the table).
    pub fixed: Option<bool>,
}

/// One step of the attack story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryStep {
    /// When the step started.
    pub start: Option<Timestamp>,
    /// When it ended.
    pub end: Option<Timestamp>,
    /// Stage.
    pub stage: Stage,
    /// What happened, in one sentence.
    pub summary: String,
    /// Indices into the server's `findings` that support the step.
    pub findings: Vec<usize>,
    /// Number of findings behind the step.
    pub count: usize,
    /// For steps of requests: what the server did with them (schema 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// Per-kind coverage: what was read and the time it spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCoverage {
    /// Artefact kind.
    pub kind: ArtefactKind,
    /// Files claimed by the kind.
    pub files: u64,
    /// Files read to the end without a problem.
    pub files_complete: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records (lines) read.
    pub records: u64,
    /// First record timestamp.
    pub first: Option<Timestamp>,
    /// Last record timestamp.
    pub last: Option<Timestamp>,
    /// Whether this kind was checked (false: recognised but no reader in this version).
    pub checked: bool,
}

/// A file that was not read, or not read completely, and why: one type for every reader and
/// every renderer. Readers of one file leave `path` and `kind` empty; the engine places them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Path (archive members as `archive.zip!member`).
    pub path: String,
    /// Artefact kind, when the file was claimed.
    pub kind: Option<ArtefactKind>,
    /// Line number the problem is at, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    /// What kind of problem (results before schema 1.5 have none: [`Cause::Other`]).
    #[serde(default)]
    pub cause: Cause,
    /// The message: what exactly, in words.
    pub reason: String,
    /// Whether evidence the checks need may be missing because of it.
    pub evidence_lost: bool,
}

impl Problem {
    /// A problem of a cause, with its message; not yet placed, no evidence lost.
    pub fn new(cause: Cause, reason: impl Into<String>) -> Problem {
        Problem {
            path: String::new(),
            kind: None,
            line: None,
            cause,
            reason: reason.into(),
            evidence_lost: false,
        }
    }

    /// The same problem at a path (and artefact kind).
    pub fn at(mut self, path: impl Into<String>, kind: Option<ArtefactKind>) -> Problem {
        self.path = path.into();
        self.kind = kind;
        self
    }

    /// The same problem at a line.
    pub fn line(mut self, line: Option<u64>) -> Problem {
        self.line = line;
        self
    }

    /// The same problem, saying whether evidence may be lost.
    pub fn lost(mut self, evidence_lost: bool) -> Problem {
        self.evidence_lost = evidence_lost;
        self
    }
}

/// What kind of problem a [`Problem`] is: the tag renderers group by (serialised in snake case,
/// e.g. `"truncated"`); the message says the rest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The file, an archive member or a part of it could not be opened or read.
    Unreadable,
    /// The file was cut, or is still being written.
    Truncated,
    /// A size or count limit of exhunt stopped part of the reading.
    Limit,
    /// The content is not in a form the reader understands (no `#Fields:`, missing fields,
    /// binary content in a text log).
    Format,
    /// Text with invalid encoding, read with replacement characters.
    Encoding,
    /// No records.
    Empty,
    /// Not followed: a symbolic link, a device, an archive member whose name leaves the root.
    NotFollowed,
    /// An encrypted archive member.
    Encrypted,
    /// Not in the triage package, or only as metadata.
    NotCollected,
    /// Not an artefact this version reads, by name, place or content.
    NotRead,
    /// Excluded by the user's options (the rule and IOC folders).
    Excluded,
    /// A check failed on the file (a YARA scan error).
    CheckFailed,
    /// A note on what the correlation could not keep.
    Note,
    /// Saved by an older version, or unknown to this one.
    #[default]
    #[serde(other)]
    Other,
}

impl Cause {
    /// Every cause, in the order renderers list them.
    pub const ALL: [Cause; 14] = [
        Cause::Unreadable,
        Cause::Truncated,
        Cause::Limit,
        Cause::Format,
        Cause::Encoding,
        Cause::Empty,
        Cause::NotFollowed,
        Cause::Encrypted,
        Cause::NotCollected,
        Cause::NotRead,
        Cause::Excluded,
        Cause::CheckFailed,
        Cause::Note,
        Cause::Other,
    ];

    /// The tag as serialised.
    pub fn tag(self) -> &'static str {
        match self {
            Cause::Unreadable => "unreadable",
            Cause::Truncated => "truncated",
            Cause::Limit => "limit",
            Cause::Format => "format",
            Cause::Encoding => "encoding",
            Cause::Empty => "empty",
            Cause::NotFollowed => "not_followed",
            Cause::Encrypted => "encrypted",
            Cause::NotCollected => "not_collected",
            Cause::NotRead => "not_read",
            Cause::Excluded => "excluded",
            Cause::CheckFailed => "check_failed",
            Cause::Note => "note",
            Cause::Other => "other",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Unreadable => "unreadable",
            Cause::Truncated => "truncated",
            Cause::Limit => "limit reached",
            Cause::Format => "format not understood",
            Cause::Encoding => "invalid text encoding",
            Cause::Empty => "no records",
            Cause::NotFollowed => "not followed",
            Cause::Encrypted => "encrypted",
            Cause::NotCollected => "not in the package",
            Cause::NotRead => "not read by this version",
            Cause::Excluded => "excluded by the options",
            Cause::CheckFailed => "a check failed",
            Cause::Note => "note",
            Cause::Other => "other",
        })
    }
}

/// Files of one folder that were listed but not opened, for one reason: a whole C: image has
/// hundreds of thousands of them, so they are counted per folder instead of listed one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFolder {
    /// The folder.
    pub folder: String,
    /// Files in it (not below it) skipped for this reason.
    pub files: u64,
    /// The reason, in words.
    pub reason: String,
}

/// A folder IIS serves, and how many of its scripts were read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRootCoverage {
    /// The physical path as the configuration writes it, or the folder as found.
    pub folder: String,
    /// Site name, for a folder of `applicationHost.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// URL path it serves, for a folder of `applicationHost.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where it comes from: the configuration file, `web.config`, or `inetpub`.
    pub source: String,
    /// Scripts found and read below it (0: the folder holds none in the target, or is not in it).
    pub scripts: u64,
}

/// Coverage of one Windows event log channel, over every file that held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCoverage {
    /// Channel name (`Security`, `MSExchange Management`…).
    pub channel: String,
    /// Files that held events of the channel.
    pub files: u64,
    /// Events read.
    pub records: u64,
    /// First event time.
    pub first: Option<Timestamp>,
    /// Last event time.
    pub last: Option<Timestamp>,
    /// The host the events came from, for exports that hold several hosts' events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The coverage ledger of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// The folders IIS serves, as the configuration and the target show them, with the
    /// scripts read below each (schema 1.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_roots: Vec<WebRootCoverage>,
    /// Per artefact kind.
    pub kinds: Vec<KindCoverage>,
    /// Windows event log channels read, with their time span.
    #[serde(default)]
    pub channels: Vec<ChannelCoverage>,
    /// Files seen in total.
    pub files_seen: u64,
    /// Files skipped (not claimed by any kind this scan reads), with the reason.
    pub skipped: Vec<Problem>,
    /// Files not opened at all (name and place suggest nothing), counted per folder.
    #[serde(default)]
    pub skipped_folders: Vec<SkippedFolder>,
    /// Problems in claimed files: unreadable, truncated, malformed, limits hit.
    pub problems: Vec<Problem>,
}

impl Coverage {
    /// Coverage of a kind, if any file of it was seen.
    pub fn kind(&self, kind: ArtefactKind) -> Option<&KindCoverage> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// Everything found about one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerResult {
    /// Server name (from the logs, or the target's name).
    pub name: String,
    /// Targets read for this server.
    pub targets: Vec<String>,
    /// The overall verdict (the worst of the campaign verdicts).
    pub verdict: VerdictKind,
    /// One verdict per campaign.
    pub verdicts: Vec<Verdict>,
    /// The attack story, in time order.
    pub story: Vec<StoryStep>,
    /// All findings, in time order.
    pub findings: Vec<Finding>,
    /// Findings counted but not stored (noisy rules are capped), per rule id.
    pub suppressed: Vec<SuppressedCount>,
    /// What was read and what was not.
    pub coverage: Coverage,
    /// Emergency mitigations found configured (URL Rewrite rules of EOMT, EOMTv2, EEMS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mitigations: Vec<Mitigation>,
}

/// An emergency mitigation configured on the server: neither evidence of an attack nor its
/// absence (it may have been applied after the exploitation), but part of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitigation {
    /// The campaign it mitigates.
    pub campaign: Campaign,
    /// The rule's name (`PowerShell - inbound`, `EEMS M1.1 PowerShell - inbound`…).
    pub rule: String,
    /// The configuration file.
    pub path: String,
    /// Line of the rule in it.
    pub line: u64,
    /// What the rule matches: its input and pattern(s).
    pub matches: String,
    /// Why the rule can be bypassed, when it can (an older pattern or the raw URL as input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weakness: Option<String>,
}

/// Exact count of findings a capped rule did not store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressedCount {
    /// Rule id.
    pub rule_id: String,
    /// Findings not stored.
    pub count: u64,
}

/// Options of the scan that shape the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSettings {
    /// Only records at or after this time were considered.
    pub since: Option<Timestamp>,
    /// Only records before this time were considered.
    pub until: Option<Timestamp>,
    /// The Exchange install path given by the user, if any.
    pub exchange_path: Option<String>,
}

/// The whole result of a scan: what `--format json` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Schema version, [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// Tool name and version.
    pub tool: ToolInfo,
    /// Scan start time.
    pub started: Timestamp,
    /// Scan end time.
    pub finished: Timestamp,
    /// Settings.
    pub settings: ScanSettings,
    /// The overall verdict over all servers.
    pub verdict: VerdictKind,
    /// Per server.
    pub servers: Vec<ServerResult>,
    /// The rules and feeds the scan used, and what of them could not be loaded.
    pub rules: RulesInfo,
}

/// What rule packs and feeds were loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesInfo {
    /// Built-in checks.
    pub builtin_rules: usize,
    /// YARA rules compiled (built-in pack and `--yara`).
    pub yara_rules: usize,
    /// External YARA files read.
    pub yara_files: Vec<String>,
    /// YARA rules or files rejected, with the reason.
    pub yara_rejected: Vec<RejectedRule>,
    /// File-hash IOCs in use (built-in and feeds).
    pub hash_iocs: usize,
    /// User IOC feeds.
    pub ioc_feeds: Vec<FeedInfo>,
    /// Sigma rules loaded (built-in event rules and `--sigma`).
    #[serde(default)]
    pub sigma_rules: usize,
    /// Sigma rule files read with `--sigma`.
    #[serde(default)]
    pub sigma_files: Vec<String>,
    /// Sigma rules or files that could not be loaded, with the reason.
    #[serde(default)]
    pub sigma_rejected: Vec<RejectedRule>,
    /// The catalogue entries of the built-in rules that fired, as this scan used them (schema
    /// 1.4; older results have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<RuleMeta>,
}

/// A rule (or rule file) that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRule {
    /// Rule file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// A user IOC feed and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedInfo {
    /// Path as given.
    pub path: String,
    /// Recognised format.
    pub format: String,
    /// File hashes loaded.
    pub hashes: usize,
    /// Entries not used, with counts (`"3 × not a file hash"`).
    pub unused: Vec<String>,
    /// Entries or files that could not be read.
    pub errors: Vec<String>,
}

/// Tool identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `exhunt`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_order_like_a_kill_chain() {
        assert!(Stage::Scan < Stage::ExploitAttempt);
        assert!(!Stage::ExploitAttempt.is_compromise());
        assert!(Stage::ExploitSuccess.is_compromise());
        assert!(Stage::WebShellUse.is_compromise());
    }

    #[test]
    fn exit_codes_follow_the_readme() {
        assert_eq!(VerdictKind::NoEvidence.exit_code(), 0);
        assert_eq!(VerdictKind::Attempted.exit_code(), 1);
        assert_eq!(VerdictKind::Compromised.exit_code(), 1);
        assert_eq!(VerdictKind::Inconclusive.exit_code(), 3);
        assert!(VerdictKind::Compromised.rank() > VerdictKind::Inconclusive.rank());
    }

    #[test]
    fn kinds_serialise_in_kebab_case() {
        let s = serde_json::to_string(&ArtefactKind::HttpProxyLog);
        assert_eq!(s.unwrap(), "\"http-proxy-log\"");
    }

    #[test]
    fn problems_carry_a_tag_and_a_message() {
        let p = Problem::new(Cause::Truncated, "file ends without a line end")
            .at("logs/a.log", Some(ArtefactKind::IisLog))
            .line(Some(7))
            .lost(true);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["cause"], "truncated");
        assert_eq!(v["reason"], "file ends without a line end");
        assert_eq!(v["line"], 7);
        assert_eq!(serde_json::from_value::<Problem>(v).unwrap(), p);
        // Every tag as serialised is the one `tag()` names, and reads back.
        for c in Cause::ALL {
            let s = serde_json::to_string(&c).unwrap();
            assert_eq!(s, format!("\"{}\"", c.tag()));
            assert_eq!(serde_json::from_str::<Cause>(&s).unwrap(), c);
            assert!(!c.to_string().is_empty());
        }
    }

    #[test]
    fn problems_of_older_results_or_unknown_causes_read_as_other() {
        // Schema 1.4: no cause.
        let old = r#"{"path":"x","kind":null,"reason":"cannot open","evidence_lost":true}"#;
        let p: Problem = serde_json::from_str(old).unwrap();
        assert_eq!(p.cause, Cause::Other);
        assert_eq!(p.reason, "cannot open");
        // A newer version's cause this one does not know.
        let new =
            r#"{"path":"x","kind":null,"cause":"quantum","reason":"r","evidence_lost":false}"#;
        assert_eq!(
            serde_json::from_str::<Problem>(new).unwrap().cause,
            Cause::Other
        );
    }
}
