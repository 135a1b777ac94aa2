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
pub fn classify(components: &[String], raw_head: &[u8], head_text: &str) -> Classification {
    if raw_head.starts_with(b"ElfFile\0") {
        return Classification::Claimed(ArtefactKind::Evtx);
    }
    if let Some(kind) = by_content(head_text) {
        return kind;
    }
    match by_path(components) {
        Some(kind) => Classification::Claimed(kind),
        None => Classification::Skipped("not an artefact kind this version reads".into()),
    }
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
    }
    None
}

fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

fn by_path(c: &[String]) -> Option<ArtefactKind> {
    let name = c.last()?;
    if name.ends_with(".evtx") {
        return Some(ArtefactKind::Evtx);
    }
    let is_log = name.ends_with(".log");
    if !is_log {
        return None;
    }
    let dirs = &c[..c.len() - 1];
    let has = |s: &str| dirs.iter().any(|d| d == s);
    let after = |a: &str, b: &str| dirs.windows(2).any(|w| w[0] == a && w[1] == b);
    if has("httpproxy") || name.starts_with("httpproxy_") {
        return Some(ArtefactKind::HttpProxyLog);
    }
    if after("ecp", "server") || name.starts_with("ecpserver") {
        return Some(ArtefactKind::EcpServerLog);
    }
    if has("oabgeneratorlog") || name.starts_with("oabgenerator") {
        return Some(ArtefactKind::OabGeneratorLog);
    }
    if dirs.iter().any(|d| d.starts_with("w3svc")) || (name.starts_with("u_ex") && name.len() <= 16)
    {
        return Some(ArtefactKind::IisLog);
    }
    None
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
        assert_eq!(
            classify(&comps("copied/a.txt"), head.as_bytes(), head),
            Classification::Claimed(ArtefactKind::HttpProxyLog)
        );
        let iis = "#Software: Microsoft Internet Information Services 10.0\n#Fields: date time\n";
        assert_eq!(
            classify(&comps("x/HttpProxy/oops.log"), iis.as_bytes(), iis),
            Classification::Claimed(ArtefactKind::IisLog)
        );
    }

    #[test]
    fn path_claims_when_content_is_silent() {
        assert_eq!(
            classify(
                &comps("V15/Logging/ECP/Server/ECPServer20210303-1.LOG"),
                b"",
                ""
            ),
            Classification::Claimed(ArtefactKind::EcpServerLog)
        );
        assert_eq!(
            classify(
                &comps("inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"),
                b"garbage",
                "garbage"
            ),
            Classification::Claimed(ArtefactKind::IisLog)
        );
        assert!(matches!(
            classify(&comps("Windows/notepad.exe"), b"MZ", "MZ"),
            Classification::Skipped(_)
        ));
        let activity = "#Log-type: ECP Activity Log\n";
        assert!(matches!(
            classify(&comps("a.log"), activity.as_bytes(), activity),
            Classification::Skipped(_)
        ));
    }
}
