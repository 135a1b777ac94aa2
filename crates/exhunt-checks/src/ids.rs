//! Stable finding ids (schema 1.6): the same evidence gives the same id in every scan of it, so
//! that a remediation plan, its verification and the fleet view can name a finding across
//! rescans instead of by its place in a list.
//!
//! The id hashes what identifies the evidence, not where the evidence was mounted: the rule,
//! the file's name and the folder it is in (the last two components of its path, lower case,
//! whatever the separator; an archive member's path inside the archive), the line, its byte
//! offset and its excerpt. A live server scanned as `C:\Program Files\…`, its copy under
//! `/cases/ex01/…` and its triage package give the same ids; the HttpProxy logs of two
//! protocols, which share file names, do not (their folders differ).

use std::collections::HashMap;

use exhunt_model::Finding;
use sha2::{Digest, Sha256};

/// The last two components of a path, lower case (`ecp/httpproxy_2021030302-1.log`).
fn tail(path: &str) -> String {
    let mut parts: Vec<String> = path
        .rsplit(['/', '\\', '!'])
        .filter(|c| !c.is_empty())
        .take(2)
        .map(str::to_lowercase)
        .collect();
    parts.reverse();
    parts.join("/")
}

/// The id of one finding, before duplicates are numbered.
pub fn stable_id(f: &Finding) -> String {
    let mut h = Sha256::new();
    let offset = f.evidence.offset.to_string();
    let line = f.evidence.line.to_string();
    for part in [
        f.rule_id.as_str(),
        tail(&f.evidence.path).as_str(),
        line.as_str(),
        offset.as_str(),
        f.evidence.excerpt.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("f-{}", hex::encode(&h.finalize()[..8]))
}

/// Gives every finding of one server its id; the same id twice (the same evidence reported
/// twice by one rule) is numbered `-2`, `-3`… in the findings' order, which is deterministic.
pub fn assign(findings: &mut [Finding]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for f in findings {
        let base = stable_id(f);
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        f.id = if *n == 1 { base } else { format!("{base}-{n}") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exhunt_model::{ArtefactKind, Campaign, Confidence, Entities, Evidence, Severity, Stage};

    fn at(path: &str, offset: u64) -> Finding {
        Finding {
            id: String::new(),
            rule_id: "EXH-PL-1".into(),
            title: "t".into(),
            campaign: Campaign::ProxyLogon,
            cves: vec![],
            attack: String::new(),
            severity: Severity::High,
            confidence: Confidence::High,
            stage: Stage::ExploitAttempt,
            timestamp: None,
            evidence: Evidence {
                path: path.into(),
                line: 7,
                offset,
                excerpt: "2021-03-03T02:14:05Z,…,ServerInfo~a]@ex:444/ecp/y.js#".into(),
            },
            entities: Entities::default(),
            kind: ArtefactKind::HttpProxyLog,
            joins: None,
            outcome: None,
        }
    }

    #[test]
    fn the_same_evidence_has_one_id_wherever_it_was_read() {
        let live = at(
            r"C:\Program Files\Microsoft\Exchange Server\V15\Logging\HttpProxy\Ecp\HttpProxy_2021030302-1.LOG",
            120,
        );
        let copy = at(
            "/cases/ex01/V15/Logging/HttpProxy/Ecp/HttpProxy_2021030302-1.LOG",
            120,
        );
        let zipped = at(
            "EX01.zip!Logging/HttpProxy/ecp/httpproxy_2021030302-1.log",
            120,
        );
        let id = stable_id(&live);
        assert!(id.starts_with("f-") && id.len() == 18, "{id}");
        assert_eq!(stable_id(&copy), id);
        assert_eq!(stable_id(&zipped), id);
        // Near misses: the same file name in another protocol's folder, another offset,
        // another rule.
        let owa = at(
            "/cases/ex01/V15/Logging/HttpProxy/Owa/HttpProxy_2021030302-1.LOG",
            120,
        );
        assert_ne!(stable_id(&owa), id);
        assert_ne!(stable_id(&at(&copy.evidence.path, 121)), id);
        let mut other = copy.clone();
        other.rule_id = "EXH-PL-2".into();
        assert_ne!(stable_id(&other), id);
    }

    #[test]
    fn the_same_evidence_twice_is_numbered() {
        let mut v = vec![at("a/b.log", 1), at("a/b.log", 1), at("a/b.log", 2)];
        assign(&mut v);
        assert_eq!(v[1].id, format!("{}-2", v[0].id));
        assert!(!v[2].id.ends_with("-2"));
        assert_ne!(v[0].id, v[2].id);
    }
}
