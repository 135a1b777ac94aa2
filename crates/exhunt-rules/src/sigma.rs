//! Sigma rules: the built-in event rules (`rules/sigma/`) and public rule sets loaded with
//! `--sigma DIR`, evaluated on Windows events and on IIS W3C records.
//!
//! The engine is rsigma (rsigma-parser + rsigma-eval 0.23, pinned), chosen after loading
//! `../shared/data/SigmaHQ_sigma` with both candidates: rsigma and sigma-rust 0.7 each parse all
//! 50 rules, but sigma-rust types values strictly (the rule's `EventID: 4756` does not match the
//! string `"4756"` that half of EVTX producers write) and has no correlations; rsigma coerces
//! numbers and strings and is the more active of the two. Both get keyless `'|all':` keyword
//! lists wrong (the SigmaHQ MSExchange Management rules use them): they compare each keyword
//! with a whole value instead of searching for it. [`fix_keyword_all`] rewrites such items to
//! `|contains|all` before compiling, which is what the rules mean.
//!
//! rsigma stays behind this module: the rest of exhunt sees [`SigmaSet`], [`SigmaRuleInfo`] and
//! the [`Document`] trait, so the engine can be swapped without touching the checks.
//!
//! Dispatch: a rule's `logsource` is mapped to channels and event ids (process_creation → Sysmon
//! 1 and Security 4688, msexchange-management → the `MSExchange Management` channel, …). Events
//! are first looked up by channel and event id; only the rules of that bucket are evaluated, so
//! an event no rule can match costs one hash lookup. A rule whose logsource exhunt does not read
//! (Linux, proxies, cloud) is not silently dropped: it is listed as rejected with the reason.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use exhunt_model::RejectedRule;
use exhunt_model::{Val, WinEvent};
use rsigma_eval::event::{Event, EventValue};
use rsigma_eval::{CompiledRule, compile_rule, evaluate_rule};
use rsigma_parser::{Detection, Level, Modifier, SigmaRule, parse_sigma_yaml};
use serde_json::Value;

/// Largest rule file read; Sigma rules are a few kilobytes.
const MAX_RULE_FILE: u64 = 1 << 20;

/// The built-in event rules, by exhunt rule id. Metadata (campaign, stage, severity, spec) lives
/// in `rules/checks.toml` under the same id.
pub const BUILTIN: [(&str, &str); 25] = [
    (
        "EXH-EV-1",
        include_str!("../../../rules/sigma/EXH-EV-1.yml"),
    ),
    (
        "EXH-EV-2",
        include_str!("../../../rules/sigma/EXH-EV-2.yml"),
    ),
    (
        "EXH-EV-3",
        include_str!("../../../rules/sigma/EXH-EV-3.yml"),
    ),
    (
        "EXH-EV-4",
        include_str!("../../../rules/sigma/EXH-EV-4.yml"),
    ),
    (
        "EXH-EV-5",
        include_str!("../../../rules/sigma/EXH-EV-5.yml"),
    ),
    (
        "EXH-EV-6",
        include_str!("../../../rules/sigma/EXH-EV-6.yml"),
    ),
    (
        "EXH-EV-7",
        include_str!("../../../rules/sigma/EXH-EV-7.yml"),
    ),
    (
        "EXH-EV-8",
        include_str!("../../../rules/sigma/EXH-EV-8.yml"),
    ),
    (
        "EXH-EV-9",
        include_str!("../../../rules/sigma/EXH-EV-9.yml"),
    ),
    (
        "EXH-EV-10",
        include_str!("../../../rules/sigma/EXH-EV-10.yml"),
    ),
    (
        "EXH-EV-11",
        include_str!("../../../rules/sigma/EXH-EV-11.yml"),
    ),
    (
        "EXH-EV-12",
        include_str!("../../../rules/sigma/EXH-EV-12.yml"),
    ),
    (
        "EXH-EV-13",
        include_str!("../../../rules/sigma/EXH-EV-13.yml"),
    ),
    (
        "EXH-EV-14",
        include_str!("../../../rules/sigma/EXH-EV-14.yml"),
    ),
    (
        "EXH-EV-15",
        include_str!("../../../rules/sigma/EXH-EV-15.yml"),
    ),
    (
        "EXH-EV-16",
        include_str!("../../../rules/sigma/EXH-EV-16.yml"),
    ),
    (
        "EXH-EV-17",
        include_str!("../../../rules/sigma/EXH-EV-17.yml"),
    ),
    (
        "EXH-EV-18",
        include_str!("../../../rules/sigma/EXH-EV-18.yml"),
    ),
    (
        "EXH-EV-19",
        include_str!("../../../rules/sigma/EXH-EV-19.yml"),
    ),
    (
        "EXH-EV-20",
        include_str!("../../../rules/sigma/EXH-EV-20.yml"),
    ),
    (
        "EXH-EV-21",
        include_str!("../../../rules/sigma/EXH-EV-21.yml"),
    ),
    (
        "EXH-EV-22",
        include_str!("../../../rules/sigma/EXH-EV-22.yml"),
    ),
    (
        "EXH-EV-23",
        include_str!("../../../rules/sigma/EXH-EV-23.yml"),
    ),
    (
        "EXH-EV-24",
        include_str!("../../../rules/sigma/EXH-EV-24.yml"),
    ),
    (
        "EXH-EV-25",
        include_str!("../../../rules/sigma/EXH-EV-25.yml"),
    ),
];

/// Where a rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Windows events of these channels (lower case), with these event ids (empty: any).
    Events(Vec<(String, Vec<u32>)>),
    /// Every Windows event (a `product: windows` rule without service or category).
    AnyEvent,
    /// Web server access logs (IIS W3C records).
    Web,
}

/// What exhunt keeps of a loaded rule besides the compiled matcher.
#[derive(Debug, Clone)]
pub struct SigmaRuleInfo {
    /// The exhunt rule id (`EXH-EV-3`) for built-in rules; `SIGMA-<id>` for loaded ones.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The Sigma `id`.
    pub sigma_id: Option<String>,
    /// The rule's author(s) (DRL 1.1 requires showing them with every match).
    pub author: Option<String>,
    /// The rule's level.
    pub level: Option<Level>,
    /// The rule's tags (`attack.t1505.003`, `cve.2021-26857`…).
    pub tags: Vec<String>,
    /// The file it came from (`rules/sigma/…` for built-in rules).
    pub file: String,
    /// Whether it is one of exhunt's own rules.
    pub builtin: bool,
    /// Where it applies.
    pub target: Target,
}

impl SigmaRuleInfo {
    /// The level as a rank: 0 informational … 4 critical; medium when the rule has none.
    pub fn level_rank(&self) -> u8 {
        match self.level {
            Some(Level::Informational) => 0,
            Some(Level::Low) => 1,
            Some(Level::Medium) | None => 2,
            Some(Level::High) => 3,
            Some(Level::Critical) => 4,
        }
    }
}

/// Rules loaded, with what could not be.
pub struct SigmaSet {
    rules: Vec<(CompiledRule, SigmaRuleInfo)>,
    by_channel: HashMap<String, Bucket>,
    any_event: Vec<usize>,
    web: Vec<usize>,
    /// Rules or files not loaded, with the reason.
    pub rejected: Vec<RejectedRule>,
    /// Rule files read with `--sigma`.
    pub files: Vec<String>,
    /// Folders rules were read from (never scanned as evidence).
    pub rule_dirs: Vec<PathBuf>,
}

#[derive(Default)]
struct Bucket {
    any_id: Vec<usize>,
    by_id: HashMap<u32, Vec<usize>>,
}

/// A record that Sigma rules can read: an IIS line, an event from an export…
pub trait Document {
    /// A field by its Sigma name.
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
    /// Calls `f` on every text of the record until it returns true (keyword rules).
    fn any_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool;
}

/// Channel names (lower case) of Sigma `service` values, as Windows names them.
fn service_channels(service: &str) -> Option<&'static [&'static str]> {
    Some(match service {
        "security" => &["security"],
        "system" => &["system"],
        "application" => &["application"],
        "msexchange-management" => &["msexchange management"],
        "powershell" => &["microsoft-windows-powershell/operational"],
        "powershell-classic" => &["windows powershell"],
        "sysmon" => &["microsoft-windows-sysmon/operational"],
        "windefend" => &["microsoft-windows-windows defender/operational"],
        "taskscheduler" => &["microsoft-windows-taskscheduler/operational"],
        "wmi" => &["microsoft-windows-wmi-activity/operational"],
        "iis-configuration" => &["microsoft-iis-configuration/operational"],
        "codeintegrity-operational" => &["microsoft-windows-codeintegrity/operational"],
        "bits-client" => &["microsoft-windows-bits-client/operational"],
        "dns-server" => &["dns server"],
        "terminalservices-localsessionmanager" => {
            &["microsoft-windows-terminalservices-localsessionmanager/operational"]
        }
        "driver-framework" => &["microsoft-windows-driverframeworks-usermode/operational"],
        "ntlm" => &["microsoft-windows-ntlm/operational"],
        "firewall-as" => &["microsoft-windows-windows firewall with advanced security/firewall"],
        "applocker" => &[
            "microsoft-windows-applocker/exe and dll",
            "microsoft-windows-applocker/msi and script",
            "microsoft-windows-applocker/packaged app-deployment",
            "microsoft-windows-applocker/packaged app-execution",
        ],
        _ => return None,
    })
}

const SYSMON: &str = "microsoft-windows-sysmon/operational";
const POWERSHELL: &str = "microsoft-windows-powershell/operational";
const DEFENDER: &str = "microsoft-windows-windows defender/operational";

/// Channels and event ids of Sigma `category` values on Windows (Sysmon, plus the Security and
/// PowerShell equivalents where Windows has them).
fn category_events(category: &str) -> Option<Vec<(String, Vec<u32>)>> {
    let s = |ids: &[u32]| vec![(SYSMON.to_string(), ids.to_vec())];
    Some(match category {
        "process_creation" => vec![(SYSMON.into(), vec![1]), ("security".into(), vec![4688])],
        "file_event" => s(&[11]),
        "file_change" => s(&[2]),
        "file_delete" => s(&[23, 26]),
        "file_access" => s(&[]),
        "process_access" => s(&[10]),
        "process_termination" => s(&[5]),
        "image_load" => s(&[7]),
        "driver_load" => s(&[6]),
        "network_connection" => s(&[3]),
        "create_remote_thread" => s(&[8]),
        "raw_access_thread" => s(&[9]),
        "registry_add" | "registry_delete" => s(&[12]),
        "registry_set" => s(&[13]),
        "registry_rename" => s(&[14]),
        "registry_event" => s(&[12, 13, 14]),
        "create_stream_hash" => s(&[15]),
        "pipe_created" => s(&[17, 18]),
        "wmi_event" => s(&[19, 20, 21]),
        "dns_query" => s(&[22]),
        "clipboard_capture" => s(&[24]),
        "process_tampering" => s(&[25]),
        "sysmon_status" => s(&[4, 16]),
        "sysmon_error" => s(&[255]),
        "ps_script" => vec![(POWERSHELL.into(), vec![4104])],
        "ps_module" => vec![
            (POWERSHELL.into(), vec![4103]),
            ("windows powershell".into(), vec![800]),
        ],
        "ps_classic_start" => vec![("windows powershell".into(), vec![400])],
        "ps_classic_provider_start" => vec![("windows powershell".into(), vec![600])],
        "antivirus" => vec![(DEFENDER.into(), vec![1006, 1015, 1116, 1117])],
        _ => return None,
    })
}

/// Maps a rule's logsource to where exhunt finds such events, or says why it cannot.
pub fn target_of(rule: &SigmaRule) -> Result<Target, String> {
    let ls = &rule.logsource;
    let product = ls.product.as_deref().map(str::to_ascii_lowercase);
    let category = ls.category.as_deref().map(str::to_ascii_lowercase);
    let service = ls.service.as_deref().map(str::to_ascii_lowercase);
    if category.as_deref() == Some("webserver") {
        return Ok(Target::Web);
    }
    match product.as_deref() {
        Some("windows") => {}
        Some(p) => {
            return Err(format!(
                "logsource product `{p}`: exhunt reads Windows events and web server logs"
            ));
        }
        None if category.is_none() && service.is_none() => {
            return Err("logsource names no product, category or service".into());
        }
        None => {}
    }
    match (category.as_deref(), service.as_deref()) {
        (Some(c), _) => category_events(c).map(Target::Events).ok_or_else(|| {
            format!("logsource category `{c}`: no Windows event source exhunt reads")
        }),
        (None, Some(s)) => service_channels(s)
            .map(|chs| Target::Events(chs.iter().map(|c| (c.to_string(), Vec::new())).collect()))
            .ok_or_else(|| format!("logsource service `{s}`: channel not mapped")),
        (None, None) => Ok(Target::AnyEvent),
    }
}

/// Makes keyless `'|all':` keyword lists search inside values (see the module docs).
pub fn fix_keyword_all(rule: &mut SigmaRule) {
    fn walk(d: &mut Detection) {
        match d {
            Detection::AllOf(items) => {
                for it in items {
                    let m = &it.field.modifiers;
                    let positional = m.iter().any(|x| {
                        matches!(
                            x,
                            Modifier::Contains
                                | Modifier::StartsWith
                                | Modifier::EndsWith
                                | Modifier::Re
                                | Modifier::Cidr
                                | Modifier::Exists
                        )
                    });
                    if it.field.name.is_none() && !positional {
                        it.field.modifiers.insert(0, Modifier::Contains);
                    }
                }
            }
            Detection::AnyOf(ds) => ds.iter_mut().for_each(walk),
            _ => {}
        }
    }
    for d in rule.detection.named.values_mut() {
        walk(d);
    }
}

/// Every text an `any_text`-style walker visits.
fn collect_texts(
    walk: impl FnOnce(&mut dyn FnMut(&str) -> bool) -> bool,
) -> Vec<Cow<'static, str>> {
    let mut v = Vec::new();
    walk(&mut |s| {
        v.push(Cow::Owned(s.to_string()));
        false
    });
    v
}

/// rsigma's view of a [`WinEvent`].
struct EventView<'a>(&'a WinEvent);

fn val_to_event(v: Cow<'_, Val>) -> EventValue<'_> {
    match v {
        Cow::Borrowed(Val::Str(s)) => EventValue::Str(Cow::Borrowed(s)),
        Cow::Borrowed(Val::Int(n)) => EventValue::Int(*n),
        Cow::Borrowed(Val::List(l)) => EventValue::Array(
            l.iter()
                .map(|s| EventValue::Str(Cow::Borrowed(s.as_str())))
                .collect(),
        ),
        Cow::Owned(Val::Str(s)) => EventValue::Str(Cow::Owned(s)),
        Cow::Owned(Val::Int(n)) => EventValue::Int(n),
        Cow::Owned(Val::List(l)) => EventValue::Array(
            l.into_iter()
                .map(|s| EventValue::Str(Cow::Owned(s)))
                .collect(),
        ),
    }
}

impl Event for EventView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.get(path).map(val_to_event)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.0.any_text(&mut |s| pred(s))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        collect_texts(|f| self.0.any_text(f))
    }

    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("Channel".into(), self.0.channel.clone().into());
        m.insert("Provider_Name".into(), self.0.provider.clone().into());
        if let Some(id) = self.0.event_id {
            m.insert("EventID".into(), id.into());
        }
        for (k, v) in &self.0.data {
            let j = match v {
                Val::Str(s) => Value::from(s.clone()),
                Val::Int(n) => Value::from(*n),
                Val::List(l) => Value::from(l.clone()),
            };
            m.insert(k.clone(), j);
        }
        if !self.0.unnamed.is_empty() {
            m.insert("Data".into(), Value::from(self.0.unnamed.clone()));
        }
        Value::Object(m)
    }
}

/// rsigma's view of a [`Document`].
struct DocView<'a>(&'a dyn Document);

impl Event for DocView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.field(path).map(EventValue::Str)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.0.any_text(&mut |s| pred(s))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        collect_texts(|f| self.0.any_text(f))
    }

    fn to_json(&self) -> Value {
        Value::Array(
            self.all_string_values()
                .into_iter()
                .map(|s| Value::from(s.into_owned()))
                .collect(),
        )
    }
}

impl SigmaSet {
    /// No rules.
    pub fn empty() -> SigmaSet {
        SigmaSet {
            rules: Vec::new(),
            by_channel: HashMap::new(),
            any_event: Vec::new(),
            web: Vec::new(),
            rejected: Vec::new(),
            files: Vec::new(),
            rule_dirs: Vec::new(),
        }
    }

    /// The built-in rules only. They are tested, so a failure here is a bug of exhunt.
    pub fn builtin() -> SigmaSet {
        let mut set = SigmaSet::empty();
        for (id, text) in BUILTIN {
            set.add_text(text, &format!("rules/sigma/{id}.yml"), Some(id));
        }
        set
    }

    /// Loads every `.yml`/`.yaml` file under `path` (a folder or one file), recording each
    /// file or rule that cannot be used with the reason.
    pub fn load(&mut self, path: &Path) {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.rule_dirs.push(canon);
        let mut files = Vec::new();
        collect_yaml(path, &mut files, 0, &mut self.rejected);
        files.sort();
        for f in files {
            let shown = f.display().to_string();
            let reject = |reason: String| RejectedRule {
                file: shown.clone(),
                reason,
            };
            match std::fs::metadata(&f) {
                Ok(m) if m.len() > MAX_RULE_FILE => {
                    self.rejected.push(reject(format!(
                        "{} bytes: larger than the {MAX_RULE_FILE}-byte limit for a rule file",
                        m.len()
                    )));
                    continue;
                }
                Err(e) => {
                    self.rejected.push(reject(format!("cannot read: {e}")));
                    continue;
                }
                Ok(_) => {}
            }
            match std::fs::read(&f) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => {
                        self.files.push(shown.clone());
                        self.add_text(&text, &shown, None);
                    }
                    Err(_) => self
                        .rejected
                        .push(reject("not UTF-8 text: not a Sigma rule file".into())),
                },
                Err(e) => self.rejected.push(reject(format!("cannot read: {e}"))),
            }
        }
    }

    fn add_text(&mut self, text: &str, file: &str, builtin_id: Option<&str>) {
        let reject = |reason: String| RejectedRule {
            file: file.to_string(),
            reason,
        };
        let collection = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                self.rejected.push(reject(format!("not a Sigma rule: {e}")));
                return;
            }
        };
        for e in &collection.errors {
            self.rejected.push(reject(format!("not a Sigma rule: {e}")));
        }
        for c in &collection.correlations {
            self.rejected.push(reject(format!(
                "correlation rule `{}`: correlations are not evaluated by this version",
                c.title
            )));
        }
        for f in &collection.filters {
            self.rejected.push(reject(format!(
                "filter `{}`: Sigma filters are not applied by this version",
                f.title
            )));
        }
        for rule in &collection.rules {
            let target = match target_of(rule) {
                Ok(t) => t,
                Err(why) => {
                    self.rejected
                        .push(reject(format!("rule `{}`: {why}", rule.title)));
                    continue;
                }
            };
            let mut rule = rule.clone();
            fix_keyword_all(&mut rule);
            let compiled = match compile_rule(&rule) {
                Ok(c) => c,
                Err(e) => {
                    self.rejected
                        .push(reject(format!("rule `{}`: {e}", rule.title)));
                    continue;
                }
            };
            let rule_id = match (builtin_id, &rule.id) {
                (Some(id), _) => id.to_string(),
                (None, Some(id)) => format!("SIGMA-{id}"),
                (None, None) => format!(
                    "SIGMA-{}",
                    Path::new(file)
                        .file_stem()
                        .map_or(String::new(), |s| s.to_string_lossy().into_owned())
                ),
            };
            let info = SigmaRuleInfo {
                rule_id,
                title: rule.title.clone(),
                sigma_id: rule.id.clone(),
                author: rule.author.clone(),
                level: rule.level,
                tags: rule.tags.clone(),
                file: file.to_string(),
                builtin: builtin_id.is_some(),
                target: target.clone(),
            };
            let idx = self.rules.len();
            self.rules.push((compiled, info));
            match target {
                Target::Web => self.web.push(idx),
                Target::AnyEvent => self.any_event.push(idx),
                Target::Events(list) => {
                    for (ch, ids) in list {
                        let b = self.by_channel.entry(ch).or_default();
                        if ids.is_empty() {
                            b.any_id.push(idx);
                        } else {
                            for id in ids {
                                b.by_id.entry(id).or_default().push(idx);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rules loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules loaded from outside exhunt (`--sigma`).
    pub fn external_count(&self) -> usize {
        self.rules.iter().filter(|(_, i)| !i.builtin).count()
    }

    /// A rule's description.
    pub fn info(&self, i: usize) -> &SigmaRuleInfo {
        &self.rules[i].1
    }

    /// Every loaded rule.
    pub fn infos(&self) -> impl Iterator<Item = &SigmaRuleInfo> {
        self.rules.iter().map(|(_, i)| i)
    }

    /// Whether web server rules are loaded.
    pub fn has_web(&self) -> bool {
        !self.web.is_empty()
    }

    /// Whether any rule can match an event of this channel and event id (the prefilter).
    pub fn wants(&self, channel: &str, event_id: Option<u32>) -> bool {
        if !self.any_event.is_empty() {
            return true;
        }
        let Some(b) = self.bucket(channel) else {
            return false;
        };
        !b.any_id.is_empty() || event_id.is_some_and(|id| b.by_id.contains_key(&id))
    }

    fn bucket(&self, channel: &str) -> Option<&Bucket> {
        if channel.bytes().any(|c| c.is_ascii_uppercase()) {
            self.by_channel.get(&channel.to_ascii_lowercase())
        } else {
            self.by_channel.get(channel)
        }
    }

    /// Indices of the rules an event matches.
    pub fn match_event(&self, ev: &WinEvent) -> Vec<usize> {
        let view = EventView(ev);
        let mut out = Vec::new();
        let mut try_rule = |i: usize| {
            if evaluate_rule(&self.rules[i].0, &view).is_some() && !out.contains(&i) {
                out.push(i);
            }
        };
        if let Some(b) = self.bucket(&ev.channel) {
            b.any_id.iter().copied().for_each(&mut try_rule);
            if let Some(list) = ev.event_id.and_then(|id| b.by_id.get(&id)) {
                list.iter().copied().for_each(&mut try_rule);
            }
        }
        self.any_event.iter().copied().for_each(&mut try_rule);
        out.sort_unstable();
        out
    }

    /// Indices of the web server rules a record matches.
    pub fn match_web(&self, doc: &dyn Document) -> Vec<usize> {
        let view = DocView(doc);
        self.web
            .iter()
            .copied()
            .filter(|&i| evaluate_rule(&self.rules[i].0, &view).is_some())
            .collect()
    }
}

fn collect_yaml(
    path: &Path,
    out: &mut Vec<PathBuf>,
    depth: usize,
    rejected: &mut Vec<RejectedRule>,
) {
    if depth > 32 {
        rejected.push(RejectedRule {
            file: path.display().to_string(),
            reason: "folder nesting deeper than 32: not read".into(),
        });
        return;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            rejected.push(RejectedRule {
                file: path.display().to_string(),
                reason: format!("cannot read: {e}"),
            });
            return;
        }
    };
    if meta.is_dir() {
        match std::fs::read_dir(path) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() && !e.file_type().is_ok_and(|t| t.is_symlink()) {
                        collect_yaml(&p, out, depth + 1, rejected);
                    } else if is_yaml(&p) {
                        out.push(p);
                    }
                }
            }
            Err(e) => rejected.push(RejectedRule {
                file: path.display().to_string(),
                reason: format!("cannot list: {e}"),
            }),
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn is_yaml(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange_event(data: &[&str]) -> WinEvent {
        WinEvent {
            channel: "MSExchange Management".into(),
            provider: "MSExchange CmdletLogs".into(),
            event_id: Some(1),
            unnamed: data.iter().map(|s| s.to_string()).collect(),
            ..WinEvent::default()
        }
    }

    fn one(yaml: &str) -> SigmaSet {
        let mut s = SigmaSet::empty();
        s.add_text(yaml, "test.yml", None);
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        s
    }

    #[test]
    fn keyless_all_keywords_search_across_the_data_array() {
        let s = one(
            "title: k\nlogsource: {product: windows, service: msexchange-management}\ndetection:\n  k:\n    '|all':\n      - 'OabVirtualDirectory'\n      - ' -ExternalUrl '\n  p:\n    - 'Page_Load'\n  condition: k and p\n",
        );
        let hit = exchange_event(&[
            "Set-OabVirtualDirectory",
            "-ExternalUrl 'http://f/<script language=\"JScript\" runat=\"server\">function Page_Load(){}</script>' -Identity 'OAB (Default Web Site)'",
        ]);
        assert_eq!(s.match_event(&hit), vec![0]);
        let miss = exchange_event(&[
            "Set-OabVirtualDirectory",
            "-ExternalUrl 'https://mail.example.com/OAB'",
        ]);
        assert!(s.match_event(&miss).is_empty());
        // Another channel is never evaluated.
        let mut other = hit.clone();
        other.channel = "Application".into();
        assert!(!s.wants(&other.channel, other.event_id));
        assert!(s.match_event(&other).is_empty());
    }

    #[test]
    fn logsources_map_or_are_rejected_with_a_reason() {
        let mut s = SigmaSet::builtin();
        let before = s.len();
        s.add_text("title: l\nlogsource: {product: linux, service: auditd}\ndetection:\n  s:\n    a: b\n  condition: s\n", "l.yml", None);
        s.add_text("title: p\nlogsource: {category: proxy}\ndetection:\n  s:\n    c-uri|contains: x\n  condition: s\n", "p.yml", None);
        s.add_text("title: w\nlogsource: {category: webserver}\ndetection:\n  s:\n    cs-uri-query|contains: x\n  condition: s\n", "w.yml", None);
        assert_eq!(s.len(), before + 1);
        assert!(s.has_web());
        let reasons: Vec<&str> = s.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("product `linux`")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("category `proxy`")),
            "{reasons:?}"
        );
    }

    #[test]
    fn process_creation_covers_sysmon_and_security() {
        let s = one(
            "title: c\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    ParentImage|endswith: '\\w3wp.exe'\n    Image|endswith: '\\cmd.exe'\n  condition: s\n",
        );
        assert!(s.wants("Security", Some(4688)));
        assert!(s.wants("Microsoft-Windows-Sysmon/Operational", Some(1)));
        assert!(!s.wants("Security", Some(4624)));
        let ev = WinEvent {
            channel: "Security".into(),
            event_id: Some(4688),
            data: vec![
                (
                    "NewProcessName".into(),
                    Val::Str("C:\\Windows\\System32\\cmd.exe".into()),
                ),
                (
                    "ParentProcessName".into(),
                    Val::Str("C:\\Windows\\System32\\inetsrv\\w3wp.exe".into()),
                ),
            ],
            ..WinEvent::default()
        };
        assert_eq!(s.match_event(&ev), vec![0]);
    }

    #[test]
    fn bad_rule_text_is_rejected_not_fatal() {
        let mut s = SigmaSet::builtin();
        s.add_text("::: not yaml", "bad.yml", None);
        s.add_text(
            "title: x\nlogsource: {product: windows}\ndetection:\n  condition: nothing\n",
            "nocond.yml",
            None,
        );
        assert_eq!(s.rejected.len(), 2, "{:?}", s.rejected);
    }

    #[test]
    fn builtin_rules_all_load() {
        let s = SigmaSet::builtin();
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        assert_eq!(s.len(), BUILTIN.len());
    }
}
