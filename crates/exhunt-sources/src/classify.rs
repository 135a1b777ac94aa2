//! Recognising artefact kinds by path *and* content.
//!
//! Content wins: a log's own directives (`#Log-type:`, `#Software:`, `#Fields:`) or magic bytes
//! say what it is, so a flat folder of renamed copies works. The path conventions of an Exchange
//! install (`Logging\HttpProxy\…`, `inetpub\logs\LogFiles\W3SVC1\…`) claim a file whose content
//! says nothing (an empty file, a log without directives): the reader then reports what is wrong
//! with it, instead of the file silently disappearing from the ledger.

use exhunt_model::ArtefactKind;

/// What the inventory does with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// Read by the reader of this kind.
    Claimed(ArtefactKind),
    /// Not read, with the reason.
    Skipped(String),
}

/// Classifies a file from its path components (lower-cased, relative to the target) and the
/// first bytes of its content decoded to UTF-8 (`head_text`), or its raw head for magic numbers.
/// With `deep`, every file that is not a log is claimed as [`ArtefactKind::File`].
pub fn classify(
    components: &[String],
    raw_head: &[u8],
    head_text: &str,
    deep: bool,
) -> Classification {
    if raw_head.starts_with(b"ElfFile\0") {
        return Classification::Claimed(ArtefactKind::Evtx);
    }
    if raw_head.starts_with(b"MDMP") {
        return Classification::Claimed(ArtefactKind::MemoryDump);
    }
    if let Some(kind) = by_content(head_text) {
        return kind;
    }
    if crate::export::looks_like_export(head_text) {
        return Classification::Claimed(ArtefactKind::EventExport);
    }
    if let Some(kind) = by_path(components) {
        return Classification::Claimed(kind);
    }
    let name = components.last().map(String::as_str).unwrap_or("");
    if name == "applicationhost.config"
        || head_text.contains("<sectionGroup name=\"system.applicationHost\"")
    {
        return Classification::Claimed(ArtefactKind::IisConfig);
    }
    if in_web_root(components) {
        return Classification::Claimed(ArtefactKind::WebFile);
    }
    if is_archive_name(name) {
        if in_staging_place(components) {
            return Classification::Claimed(ArtefactKind::Archive);
        }
        if name.ends_with(".zip") && !deep {
            return Classification::Skipped(
                "zip archive outside the staging places: its members are read".into(),
            );
        }
    }
    if deep {
        return Classification::Claimed(ArtefactKind::File);
    }
    Classification::Skipped(
        "not an artefact kind this version reads (use --deep to look at every file)".into(),
    )
}

/// Whether a file that its path does not claim may still be a log or a dump by content, so that
/// it is worth opening: extensions a renamed log or a dump keeps (`.log`, `.txt`, `.csv`, `.dmp`,
/// none…), log folders, and the places attackers stage files. Everything else is listed as
/// skipped without being opened, so a whole C: image costs little more than its walk; `--deep`
/// opens every file. `.dat` is not on the list: Windows and its programs keep thousands of
/// `.dat` files (registry hives, caches), and opening them tripled the cost of scanning a C:
/// image; a `.dat` in a log folder or a staging place is still opened.
pub fn worth_sniffing(components: &[String]) -> bool {
    let name = components.last().map(String::as_str).unwrap_or("");
    let ext = match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    };
    const EXTS: &[&str] = &[
        "", "log", "txt", "csv", "tsv", "out", "old", "bak", "dmp", "mdmp", "hdmp", "tmp", "bin",
        "json", "jsonl", "ndjson", "gz",
    ];
    EXTS.contains(&ext)
        || components
            .iter()
            .any(|c| c == "logging" || c == "logfiles" || c == "logs" || c == "public")
        || in_staging_place(components)
}

pub use crate::locations::{in_staging_place, in_web_root, is_archive_name};

/// Whether the scanner leaves a file unopened (only counted per folder) on its path alone:
/// neither its path claims it, nor may it be a log or dump by content, nor is it a script that
/// a web root may serve (the web roots are known only once the walk has found the IIS
/// configuration and the `web.config` files). With `deep`, every file is opened.
pub fn left_unopened(c: &[String], deep: bool) -> bool {
    !deep
        && matches!(classify(c, b"", "", false), Classification::Skipped(_))
        && !worth_sniffing(c)
        && !crate::webroots::is_server_script(c)
}

fn by_content(head: &str) -> Option<Classification> {
    for line in head.lines().take(16) {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = strip_prefix_ci(line, "#Log-type:") {
            let t = rest.trim().to_ascii_lowercase();
            let kind = if t.starts_with("httpproxy") {
                ArtefactKind::HttpProxyLog
            } else if t.starts_with("ecp server") {
                ArtefactKind::EcpServerLog
            } else if t.starts_with("oab") {
                ArtefactKind::OabGeneratorLog
            } else if t.starts_with("rps http") || t.starts_with("rps_http") {
                ArtefactKind::RpsHttpLog
            } else {
                return Some(Classification::Skipped(format!(
                    "Exchange log of type `{}`, not read by this version's checks",
                    rest.trim()
                )));
            };
            return Some(Classification::Claimed(kind));
        }
        if let Some(rest) = strip_prefix_ci(line, "#Software:")
            && rest
                .to_ascii_lowercase()
                .contains("internet information services")
        {
            return Some(Classification::Claimed(ArtefactKind::IisLog));
        }
        if let Some(rest) = strip_prefix_ci(line, "#Fields:") {
            let f = rest.to_ascii_lowercase();
            if f.contains("cs-uri-stem") || f.trim_start().starts_with("date time") {
                return Some(Classification::Claimed(ArtefactKind::IisLog));
            }
            if f.contains("anchormailbox") {
                return Some(Classification::Claimed(ArtefactKind::HttpProxyLog));
            }
        }
        // HttpProxy files start with a bare CSV header line before the directives.
        if line.starts_with("DateTime,RequestId,") && line.contains("AnchorMailbox") {
            return Some(Classification::Claimed(ArtefactKind::HttpProxyLog));
        }
        // So do the remote PowerShell proxy logs (Rps_Http), with their own columns.
        if (line.starts_with("DateTime,StartTime,RequestId,")
            || strip_prefix_ci(line, "#Fields:").is_some())
            && line.contains("ClientInfo")
            && line.contains("CommandName")
        {
            return Some(Classification::Claimed(ArtefactKind::RpsHttpLog));
        }
    }
    None
}

fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

fn by_path(c: &[String]) -> Option<ArtefactKind> {
    crate::locations::log_kind_by_path(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<String> {
        p.split(['/', '\\']).map(|s| s.to_lowercase()).collect()
    }

    #[test]
    fn content_wins_over_a_renamed_file() {
        let head =
            "DateTime,RequestId\n#Software: Microsoft Exchange Server\n#Log-type: HttpProxy Logs\n";
        let c = classify(&comps("copied/a.txt"), head.as_bytes(), head, false);
        assert_eq!(c, Classification::Claimed(ArtefactKind::HttpProxyLog));
        let iis = "#Software: Microsoft Internet Information Services 10.0\n#Fields: date time\n";
        let c = classify(&comps("x/HttpProxy/oops.log"), iis.as_bytes(), iis, false);
        assert_eq!(c, Classification::Claimed(ArtefactKind::IisLog));
    }

    #[test]
    fn path_claims_when_content_is_silent() {
        let c = classify(
            &comps("V15/Logging/ECP/Server/ECPServer20210303-1.LOG"),
            b"",
            "",
            false,
        );
        assert_eq!(c, Classification::Claimed(ArtefactKind::EcpServerLog));
        let c = classify(
            &comps("inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"),
            b"garbage",
            "garbage",
            false,
        );
        assert_eq!(c, Classification::Claimed(ArtefactKind::IisLog));
        assert!(matches!(
            classify(&comps("Windows/notepad.exe"), b"MZ", "MZ", false),
            Classification::Skipped(_)
        ));
        let c = classify(&comps("Windows/notepad.exe"), b"MZ", "MZ", true);
        assert_eq!(c, Classification::Claimed(ArtefactKind::File));
        let activity = "#Log-type: ECP Activity Log\n";
        assert!(matches!(
            classify(&comps("a.log"), activity.as_bytes(), activity, false),
            Classification::Skipped(_)
        ));
    }

    #[test]
    fn web_roots_dumps_and_staged_archives() {
        let web = |p: &str| classify(&comps(p), b"<%@ Page", "<%@ Page", false);
        let claimed = Classification::Claimed(ArtefactKind::WebFile);
        assert_eq!(
            web("inetpub/wwwroot/aspnet_client/system_web/x.aspx"),
            claimed
        );
        assert_eq!(
            web(
                "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/Current/themes/x.aspx"
            ),
            claimed
        );
        assert_eq!(
            web("V15/FrontEnd/HttpProxy/ecp/auth/TimeoutLogoff.aspx"),
            claimed
        );
        assert!(matches!(
            web("V15/FrontEnd/HttpProxy/owa/bin/x.dll"),
            Classification::Skipped(_)
        ));
        let dump = classify(&comps("Users/Public/x.gif"), b"MDMP\x93\xa7", "", false);
        assert_eq!(dump, Classification::Claimed(ArtefactKind::MemoryDump));
        let arch = Classification::Claimed(ArtefactKind::Archive);
        assert_eq!(
            classify(&comps("ProgramData/it.zip"), b"PK\x03\x04", "", false),
            arch
        );
        assert_eq!(classify(&comps("root/a.7z"), b"7z", "", false), arch);
        assert!(matches!(
            classify(&comps("Users/bob/Desktop/photos.zip"), b"PK", "", false),
            Classification::Skipped(_)
        ));
    }
}
