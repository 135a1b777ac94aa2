//! File checks (research spec §5, §6, C-27065-E, C-PS-D): what attackers leave on disk.
//!
//! A file in a web root, a memory dump or a staged archive is looked at once, as a whole: its
//! name against the clean-install lists and the IOC paths, its first bytes against its extension,
//! its hashes against the IOC packs, its content against the YARA rules, its times against the
//! exposure window. The facts are gathered by the engine (which streams or memory-maps the
//! file); the checks here only judge them.

use exhunt_model::{
    ArtefactKind, Campaign, Confidence, Entities, Evidence, Finding, Severity, Stage, Timestamp,
};
use exhunt_rules::RulePack;

use crate::pagecode::{PageCode, Strength};
use crate::webshell::url_of_components;

mod lists;
use lists::is_script;
pub use lists::{CleanList, benign_archive, magic, severity_score, severity_word};

/// A YARA rule that matched a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YaraHit {
    /// Namespace (`exhunt` for the built-in pack, the file name for external rules).
    pub namespace: String,
    /// Rule identifier.
    pub rule: String,
    /// `description` metadata, if any.
    pub description: Option<String>,
    /// `author` metadata, if any (DRL 1.1 requires showing it).
    pub author: Option<String>,
    /// `severity`/`score` metadata mapped to a severity, if any.
    pub severity: Option<Severity>,
    /// Whether the rule comes from the built-in pack.
    pub builtin: bool,
}

/// Everything known about one file.
#[derive(Debug, Clone, Default)]
pub struct FileFacts<'a> {
    /// Path as shown in evidence.
    pub display: &'a str,
    /// The URL a site of the IIS configuration serves the file under, when one does.
    pub url: Option<&'a str>,
    /// Lower-cased path components relative to the target.
    pub components: &'a [String],
    /// Size in bytes.
    pub size: u64,
    /// First bytes.
    pub head: &'a [u8],
    /// Hashes, lower-case hex, when computed.
    pub sha256: Option<String>,
    /// SHA-1.
    pub sha1: Option<String>,
    /// MD5.
    pub md5: Option<String>,
    /// YARA matches.
    pub yara: Vec<YaraHit>,
    /// Last modification time, when the platform or the archive gives one.
    pub modified: Option<Timestamp>,
    /// Hidden attribute (Windows), when known.
    pub hidden: Option<bool>,
    /// System attribute (Windows), when known.
    pub system: Option<bool>,
    /// What the server code of a page can do, for script files whose content was read.
    pub page: Option<&'a PageCode>,
}

/// Rule ids the file checks emit.
pub const RULE_IDS: [&str; 10] = [
    "EXH-FS-1",
    "EXH-FS-2",
    "EXH-FS-3",
    "EXH-FS-4",
    "EXH-FS-5",
    "EXH-FS-6",
    "EXH-FS-9",
    "EXH-FS-10",
    "EXH-YARA-1",
    "EXH-YARA-2",
];

/// Judges file facts; built once per scan.
pub struct FileJudge {
    clean: Vec<CleanList>,
    /// IOC paths as lower-cased components from the anchor folder (`frontend`, `inetpub`, `users`).
    ioc_paths: Vec<(Vec<String>, String)>,
    window_start: Timestamp,
}

fn finding(
    pack: &RulePack,
    rule_id: &str,
    facts: &FileFacts<'_>,
    kind: ArtefactKind,
    (stage, severity, confidence): (Stage, Severity, Confidence),
    title: String,
) -> Option<Finding> {
    let meta = pack.rule(rule_id)?;
    Some(Finding {
        id: String::new(),
        rule_id: meta.id.clone(),
        title,
        campaign: meta.campaign,
        cves: meta.cves.clone(),
        attack: meta.attack.clone(),
        severity,
        confidence,
        stage,
        timestamp: facts.modified,
        evidence: Evidence {
            path: facts.display.to_string(),
            line: 0,
            offset: 0,
            excerpt: excerpt(facts.head),
        },
        entities: Entities {
            file_path: Some(facts.display.to_string()),
            url: facts
                .url
                .map(str::to_string)
                .or_else(|| url_of_components(facts.components)),
            ..Entities::default()
        },
        kind,
        joins: meta.joins.clone(),
        outcome: None,
    })
}

/// A printable excerpt of the first bytes.
fn excerpt(head: &[u8]) -> String {
    let take = &head[..head.len().min(160)];
    take.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

impl FileJudge {
    /// From the rule pack.
    pub fn new(pack: &RulePack) -> FileJudge {
        let clean = pack
            .clean_lists()
            .iter()
            .filter_map(|(name, text)| CleanList::parse(name, text))
            .collect();
        let ioc_paths = pack
            .webshell_paths
            .iter()
            .filter_map(|i| {
                let comps: Vec<String> = i
                    .indicator
                    .split(['\\', '/'])
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                let anchor = comps
                    .iter()
                    .position(|c| c == "frontend" || c == "inetpub" || c == "users")?;
                Some((comps[anchor..].to_vec(), i.source.clone()))
            })
            .collect();
        FileJudge {
            clean,
            ioc_paths,
            window_start: Campaign::PostExploitation.window_start(),
        }
    }

    /// The checks on one file.
    pub fn judge(
        &self,
        pack: &RulePack,
        kind: ArtefactKind,
        facts: &FileFacts<'_>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let name = facts.components.last().map(String::as_str).unwrap_or("");
        let script = is_script(name);
        let mut notes = Vec::new();
        if let Some(t) = facts.modified
            && t >= self.window_start
            && t < self.window_start + chrono::Duration::days(120)
        {
            notes.push(format!(
                "modified {} (inside the exposure window)",
                t.format("%Y-%m-%d")
            ));
        }
        if facts.hidden == Some(true) || facts.system == Some(true) {
            notes.push(
                match (facts.hidden, facts.system) {
                    (Some(true), Some(true)) => "hidden+system attributes",
                    (Some(true), _) => "hidden attribute",
                    _ => "system attribute",
                }
                .to_string(),
            );
        }
        let note = if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join("; "))
        };
        let mut push = |f: Option<Finding>| out.extend(f);

        match kind {
            ArtefactKind::WebFile | ArtefactKind::File => {
                let malicious = facts.page.is_some_and(PageCode::malicious);
                // Content that speaks for itself (the analyser, a YARA rule, a known hash):
                // a place alone (an unknown name, a published path) is then no longer the point.
                let content_says = malicious
                    || !facts.yara.is_empty()
                    || [&facts.sha256, &facts.sha1, &facts.md5]
                        .iter()
                        .any(|h| h.as_deref().is_some_and(|h| pack.hash_ioc(h).is_some()));
                // Known web-shell path (MSTIC): names such as `errorEE.aspx` are specific, others
                // generic; without content that confirms it, a file to review.
                if let Some((_, source)) = self
                    .ioc_paths
                    .iter()
                    .find(|(p, _)| facts.components.ends_with(p))
                {
                    push(finding(
                        pack,
                        "EXH-FS-4",
                        facts,
                        kind,
                        if content_says {
                            (Stage::Persistence, Severity::High, Confidence::Medium)
                        } else {
                            (Stage::Persistence, Severity::Medium, Confidence::Low)
                        },
                        format!(
                            "{}File at a published web-shell path: {}{note} ({source})",
                            if content_says { "" } else { "REVIEW: " },
                            facts.display
                        ),
                    ));
                }
                // What the page's server code can do: content decides, wherever the file is.
                if let Some(page) = facts.page
                    && let Some(top) = page
                        .strongest()
                        .filter(|c| c.strength >= Strength::Malicious)
                {
                    let (severity, confidence) = if top.strength == Strength::Critical {
                        (Severity::Critical, Confidence::High)
                    } else {
                        (Severity::High, Confidence::Medium)
                    };
                    let others: Vec<&str> = page
                        .capabilities
                        .iter()
                        .skip(1)
                        .filter(|c| c.strength >= Strength::Malicious)
                        .map(|c| c.name)
                        .collect();
                    let mut f = finding(
                        pack,
                        "EXH-FS-9",
                        facts,
                        kind,
                        (Stage::Persistence, severity, confidence),
                        format!(
                            "Web shell: {} {} ({}){}{note}",
                            facts.display,
                            top.what,
                            top.name,
                            if others.is_empty() {
                                String::new()
                            } else {
                                format!("; also {}", others.join(", "))
                            }
                        ),
                    );
                    if let Some(f) = &mut f {
                        f.evidence.line = top.line;
                        if !top.excerpt.is_empty() {
                            f.evidence.excerpt = top.excerpt.clone();
                        }
                    }
                    push(f);
                }
                // Unexpected name in a folder whose clean content is known, or any script in a
                // web root outside those lists: a file to review. Its place alone never makes
                // a compromise (an intranet page, a redirect page); its content, a hash, the
                // logs or the event logs do.
                if kind == ArtefactKind::WebFile && !content_says {
                    let list = self.clean.iter().find(|l| l.covers(facts.components));
                    let exchange_folder = list.is_some() || in_exchange_auth(facts.components);
                    // Exchange's own applications (ClientAccess, FrontEnd\HttpProxy) ship
                    // hundreds of pages no list names: there only the drop sites (the auth
                    // folders and their subfolders, OAB, aspnet_client) make an unknown script
                    // worth a review; their content is analysed everywhere.
                    let product = in_exchange_product(facts.components)
                        && !exchange_folder
                        && !in_drop_site(facts.components);
                    let unexpected = match list {
                        Some(l) => !l.allows(name),
                        None => script && !in_temp_aspnet(facts.components) && !product,
                    };
                    if unexpected {
                        let why = review_reason(facts.page, script);
                        push(finding(
                            pack,
                            "EXH-FS-1",
                            facts,
                            kind,
                            (
                                Stage::Persistence,
                                if exchange_folder && script {
                                    Severity::Medium
                                } else {
                                    Severity::Low
                                },
                                Confidence::Low,
                            ),
                            format!(
                                "REVIEW: unknown {} in a web root: {} — {why}{note}",
                                if script { "server-side script" } else { "file" },
                                facts.display
                            ),
                        ));
                    } else if let Some(l) = list
                        && script
                        && let Some(page) = facts.page
                        && let Some(odd) = unshipped_shape(page)
                    {
                        push(finding(
                            pack,
                            "EXH-FS-10",
                            facts,
                            kind,
                            (Stage::Persistence, Severity::Medium, Confidence::Low),
                            format!(
                                "REVIEW: {} has a name Exchange ships ({}) but not the shape of the shipped page: {odd}; compare it with a clean copy{note}",
                                facts.display, l.source
                            ),
                        ));
                    }
                }
                // Magic that contradicts the name.
                if script && let Some(what) = magic(facts.head) {
                    push(finding(
                        pack,
                        "EXH-FS-3",
                        facts,
                        kind,
                        (Stage::Persistence, Severity::Critical, Confidence::High),
                        format!(
                            "{} is {what}, not a page: a web shell hidden in an export{note}",
                            facts.display
                        ),
                    ));
                } else if script
                    && facts.head.first().is_some_and(|b| !b.is_ascii())
                    && !has_bom(facts.head)
                {
                    push(finding(
                        pack,
                        "EXH-FS-3",
                        facts,
                        kind,
                        (Stage::Persistence, Severity::High, Confidence::Medium),
                        format!(
                            "{} starts with binary bytes, not page markup{note}",
                            facts.display
                        ),
                    ));
                }
            }
            ArtefactKind::MemoryDump => {
                let lsass = name.contains("lsass");
                push(finding(
                    pack,
                    "EXH-FS-5",
                    facts,
                    kind,
                    if lsass {
                        (
                            Stage::PostExploitation,
                            Severity::Critical,
                            Confidence::High,
                        )
                    } else {
                        (Stage::PostExploitation, Severity::High, Confidence::Medium)
                    },
                    format!(
                        "Memory dump {}{} ({} bytes){note}",
                        facts.display,
                        if lsass {
                            " named after LSASS: credential theft"
                        } else {
                            ""
                        },
                        facts.size
                    ),
                ));
            }
            ArtefactKind::Archive if benign_archive(facts.components).is_none() => {
                let short = name
                    .rsplit_once('.')
                    .is_some_and(|(b, _)| (1..=6).contains(&b.len()));
                push(finding(
                    pack,
                    "EXH-FS-6",
                    facts,
                    kind,
                    (
                        Stage::PostExploitation,
                        Severity::Medium,
                        if short {
                            Confidence::Medium
                        } else {
                            Confidence::Low
                        },
                    ),
                    format!(
                        "Archive in a staging place: {} ({} bytes){note}",
                        facts.display, facts.size
                    ),
                ));
            }
            _ => {}
        }
        // Hash IOCs.
        for (h, ty) in [
            (&facts.sha256, "sha256"),
            (&facts.sha1, "sha1"),
            (&facts.md5, "md5"),
        ] {
            if let Some(h) = h
                && let Some(ioc) = pack.hash_ioc(h)
            {
                push(finding(
                    pack,
                    "EXH-FS-2",
                    facts,
                    kind,
                    (Stage::Persistence, Severity::Critical, Confidence::High),
                    format!(
                        "{} matches a known {ty} ({}; {}){note}",
                        facts.display, ioc.context, ioc.source
                    ),
                ));
            }
        }
        // YARA.
        for y in &facts.yara {
            let (id, sev) = if y.builtin {
                ("EXH-YARA-1", Severity::Critical)
            } else {
                ("EXH-YARA-2", Severity::High)
            };
            let who = match (&y.author, y.builtin) {
                (_, true) => String::new(),
                (Some(a), false) => format!(" (rule by {a}, {})", y.namespace),
                (None, false) => format!(" ({})", y.namespace),
            };
            push(finding(
                pack,
                id,
                facts,
                kind,
                (
                    Stage::Persistence,
                    y.severity.unwrap_or(sev),
                    Confidence::High,
                ),
                format!(
                    "{}: {}{}{who}{note}",
                    facts.display,
                    y.rule,
                    y.description
                        .as_ref()
                        .map(|d| format!(" — {d}"))
                        .unwrap_or_default()
                ),
            ));
        }
        out
    }
}

/// Why a script in a web root is listed for review, in the words of its content.
fn review_reason(page: Option<&PageCode>, script: bool) -> String {
    let Some(page) = page else {
        return if script {
            "its content was not analysed; check it".into()
        } else {
            "not on the clean-install list of its folder".into()
        };
    };
    let signs: Vec<&str> = page.capabilities.iter().map(|c| c.what).collect();
    if !signs.is_empty() {
        format!(
            "flagged for its place; its server code {}, nothing shows it is a web shell",
            signs.join(", ")
        )
    } else if page.has_server_code {
        format!(
            "flagged for its place; {} characters of inline server code with no web-shell capability",
            page.code_len
        )
    } else {
        "flagged for its place; no inline server code".into()
    }
}

/// How a page under a shipped name differs from what Exchange ships: Exchange's pages are
/// compiled against its own classes (`Inherits="Microsoft.Exchange…"`) and carry at most
/// short inline expressions.
fn unshipped_shape(page: &PageCode) -> Option<String> {
    if let Some(c) = page.capabilities.first() {
        return Some(format!("its server code {}", c.what));
    }
    if let Some(n) = page.notes.first() {
        return Some((*n).to_string());
    }
    if !page.code_behind && page.code_len > 400 {
        return Some(format!(
            "{} characters of inline server code and no compiled code-behind",
            page.code_len
        ));
    }
    None
}

/// Exchange's own served folders: owa\auth and ecp\auth below `FrontEnd\HttpProxy`, and
/// their subfolders.
fn in_exchange_auth(c: &[String]) -> bool {
    c.windows(3)
        .any(|w| w[0] == "httpproxy" && (w[1] == "owa" || w[1] == "ecp") && w[2] == "auth")
}

/// Folders of the Exchange install that IIS serves: `ClientAccess\…` (the back-end sites) and
/// `FrontEnd\HttpProxy\…` (the front end).
fn in_exchange_product(c: &[String]) -> bool {
    let dirs = &c[..c.len().saturating_sub(1)];
    dirs.iter().any(|d| d == "clientaccess")
        || dirs
            .windows(2)
            .any(|w| w[0] == "frontend" && w[1] == "httpproxy")
}

/// Where web shells were dropped in Exchange's folders (spec §5): below owa\auth and ecp\auth,
/// the OAB folder of the front end, aspnet_client.
fn in_drop_site(c: &[String]) -> bool {
    let dirs = &c[..c.len().saturating_sub(1)];
    in_exchange_auth(c)
        || dirs.iter().any(|d| d == "aspnet_client")
        || dirs
            .windows(2)
            .any(|w| w[0] == "httpproxy" && w[1] == "oab")
}

fn has_bom(head: &[u8]) -> bool {
    head.starts_with(&[0xEF, 0xBB, 0xBF])
        || head.starts_with(&[0xFF, 0xFE])
        || head.starts_with(&[0xFE, 0xFF])
}

fn in_temp_aspnet(c: &[String]) -> bool {
    c.iter().any(|d| d == "temporary asp.net files")
}

#[cfg(test)]
mod tests;
