//! What to take: the scanner's walk, classification and web roots, and the location list of
//! `exhunt_sources::locations`, applied to every file of the target.
//!
//! Why it reuses the scanner rather than a glob list: a collection that misses what the scanner
//! would read makes a package that scans "inconclusive" (or worse, clean) where the server
//! itself would not. The walk lists exactly the files the scanner opens, plus the logs only a
//! collection takes; a file whose path says nothing is sniffed by content like the scanner does.

use std::io::Read;
use std::path::{Path, PathBuf};

use exhunt_model::ArtefactKind;
use exhunt_sources::classify::{left_unopened, worth_sniffing};
use exhunt_sources::locations::{Wanted, wanted, wanted_by_path};
use exhunt_sources::platform::open_evidence;
use exhunt_sources::webroots::{WebRoots, is_server_script, not_an_application};
use exhunt_sources::{Classification, classify};

/// Bytes read to recognise a file by content (as the scanner does).
const HEAD: u64 = 8192;

/// A file the collection takes (or records).
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The file.
    pub path: PathBuf,
    /// Original path as the scanner shows it.
    pub display: String,
    /// Member name in the package (`files/…`, `/` separators).
    pub member: String,
    /// Lower-cased components relative to the target.
    pub components: Vec<String>,
    /// The kind the scanner gives it, if any.
    pub kind: Option<ArtefactKind>,
    /// What and how much.
    pub wanted: Wanted,
}

/// A problem found while listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Path.
    pub path: String,
    /// Why.
    pub reason: String,
    /// Evidence lost.
    pub evidence_lost: bool,
}

/// The result of the selection.
#[derive(Debug, Default)]
pub struct Selection {
    /// Files taken, in path order.
    pub chosen: Vec<Chosen>,
    /// Files or folders that could not be listed, links not followed.
    pub problems: Vec<Listed>,
    /// Files seen by the walk.
    pub files_seen: u64,
    /// The Exchange install folder, when one was found in the target.
    pub exchange_path: Option<String>,
}

/// Selects the files of `roots` (folder, prefix of its members) to collect, leaving out
/// `exclude` (the package being written).
pub fn select(roots: &[(PathBuf, String)], message_tracking: bool, exclude: &Path) -> Selection {
    let mut sel = Selection::default();
    let unopened =
        move |c: &[String]| left_unopened(c, false) && !wanted_by_path(c, message_tracking);
    for (root, prefix) in roots {
        let inv = exhunt_sources::inventory::files_of(root, &unopened);
        sel.files_seen += inv.files_seen;
        sel.problems
            .extend(inv.problems.into_iter().map(|p| Listed {
                path: p.path,
                reason: p.reason,
                evidence_lost: p.evidence_lost,
            }));
        let items: Vec<_> = inv
            .items
            .into_iter()
            .filter_map(|i| match i.source {
                exhunt_sources::ItemSource::File(p) if p != exclude => {
                    Some((p, i.display, i.components))
                }
                _ => None,
            })
            .collect();
        let roots_of = web_roots(&items);
        for (path, display, components) in items {
            let served = is_server_script(&components)
                && (roots_of.root_of(&components).is_some()
                    || WebRoots::under_inetpub(&components));
            let Some((kind, wanted)) = judge(&path, &components, served, message_tracking) else {
                continue;
            };
            if sel.exchange_path.is_none() {
                sel.exchange_path = exchange_folder(root, &path, &components);
            }
            let Some(member) = member_name(root, prefix, &path) else {
                sel.problems.push(Listed {
                    path: display,
                    reason: "path outside the target, not collected".into(),
                    evidence_lost: true,
                });
                continue;
            };
            sel.chosen.push(Chosen {
                path,
                display,
                member,
                components,
                kind,
                wanted,
            });
        }
    }
    sel.chosen.sort_by(|a, b| a.member.cmp(&b.member));
    sel
}

/// The kind and the collection's decision for one file: by path, then by content for a file
/// whose path says nothing but may be a renamed log (the scanner's rule).
fn judge(
    path: &Path,
    c: &[String],
    served: bool,
    message_tracking: bool,
) -> Option<(Option<ArtefactKind>, Wanted)> {
    let mut kind = match classify(c, b"", "", false) {
        Classification::Claimed(k) => Some(k),
        Classification::Skipped(_) => None,
    };
    if kind.is_none() && worth_sniffing(c) {
        let mut head = Vec::new();
        if let Ok((f, _)) = open_evidence(path) {
            let _ = f.take(HEAD).read_to_end(&mut head);
        }
        kind = by_content(c, &head);
    }
    let w = wanted(c, kind, served, message_tracking)?;
    Some((kind, w))
}

fn by_content(c: &[String], head: &[u8]) -> Option<ArtefactKind> {
    if head.starts_with(&[0x1f, 0x8b]) {
        // A gzip-compressed log: its name without `.gz` says what it is.
        let mut stem = c.to_vec();
        if let Some(last) = stem.last_mut()
            && let Some(s) = last.strip_suffix(".gz")
        {
            *last = s.to_string();
        }
        return match classify(&stem, b"", "", false) {
            Classification::Claimed(k) if k.is_log() => Some(k),
            _ => None,
        };
    }
    let text = match exhunt_sources::decode::sniff(head) {
        exhunt_sources::decode::TextEncoding::Utf16Le { .. } => {
            encoding_rs::UTF_16LE.decode(head).0.into_owned()
        }
        exhunt_sources::decode::TextEncoding::Utf16Be { .. } => {
            encoding_rs::UTF_16BE.decode(head).0.into_owned()
        }
        _ => String::from_utf8_lossy(head).into_owned(),
    };
    match classify(c, head, &text, false) {
        Classification::Claimed(k) => Some(k),
        Classification::Skipped(_) => None,
    }
}

/// The web roots of the target, as the scanner finds them: `applicationHost.config` and the
/// folders holding a `web.config`.
fn web_roots(items: &[(PathBuf, String, Vec<String>)]) -> WebRoots {
    let mut roots = WebRoots::default();
    for (path, display, c) in items {
        let name = c.last().map(String::as_str).unwrap_or("");
        if name == "applicationhost.config" {
            let mut bytes = Vec::new();
            if let Ok((f, _)) = open_evidence(path)
                && f.take(16 << 20).read_to_end(&mut bytes).is_ok()
            {
                roots.add_config(display, &decode(&bytes));
            }
        } else if name == "web.config" && !not_an_application(c) {
            let folder = path
                .parent()
                .map_or(display.clone(), |p| p.display().to_string());
            roots.add_web_config(&folder, c);
        }
    }
    roots
}

fn decode(bytes: &[u8]) -> String {
    if bytes.starts_with(&[0xFF, 0xFE]) {
        encoding_rs::UTF_16LE.decode(bytes).0.into_owned()
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        encoding_rs::UTF_16BE.decode(bytes).0.into_owned()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// `files/<prefix>/<path relative to root>`, with `/` separators.
fn member_name(root: &Path, prefix: &str, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut name = String::from(exhunt_sources::package::FILES_PREFIX);
    if !prefix.is_empty() {
        name.push_str(prefix);
        name.push('/');
    }
    let mut first = true;
    for part in rel.components() {
        let std::path::Component::Normal(p) = part else {
            return None;
        };
        if !first {
            name.push('/');
        }
        first = false;
        name.push_str(&p.to_string_lossy());
    }
    (!first).then_some(name)
}

/// The Exchange install folder (`…\V15`) above a file, when its path shows one.
fn exchange_folder(root: &Path, path: &Path, c: &[String]) -> Option<String> {
    const BELOW: &[&str] = &[
        "logging",
        "frontend",
        "clientaccess",
        "bin",
        "transportroles",
    ];
    let i = c
        .windows(2)
        .position(|w| w[0] == "v15" && BELOW.contains(&w[1].as_str()))?;
    let rel = path.strip_prefix(root).ok()?;
    let mut p = root.to_path_buf();
    for part in rel.components().take(i + 1) {
        p.push(part);
    }
    Some(p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_keep_case_and_use_slashes() {
        let root = Path::new("/x/img");
        let p = root.join("Program Files").join("Microsoft").join("a.LOG");
        assert_eq!(
            member_name(root, "", &p).as_deref(),
            Some("files/Program Files/Microsoft/a.LOG")
        );
        assert_eq!(
            member_name(root, "D_", &root.join("a")).as_deref(),
            Some("files/D_/a")
        );
        assert_eq!(member_name(root, "", Path::new("/y/a")), None);
    }
}
