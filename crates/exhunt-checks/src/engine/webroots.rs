//! The folders IIS serves in a target, and which scripts they make worth reading.

use super::*;

impl Engine {
    /// The folders IIS serves in this target (spec §5): the virtual directories of every
    /// `applicationHost.config` found, the folders holding a `web.config`, and `inetpub`.
    pub(super) fn web_roots(&self, items: &[Item]) -> Served {
        use exhunt_sources::webroots::{RootSource, WebRoots, is_server_script};
        let mut roots = WebRoots::default();
        let mut opener = Opener::default();
        for item in items {
            let name = item.components.last().map(String::as_str).unwrap_or("");
            if name == "applicationhost.config" {
                let mut text = Vec::new();
                let read = opener
                    .open(item, &self.opts.limits)
                    .and_then(|s| s.take(KEEP_FOR_YARA).read_to_end(&mut text));
                if read.is_ok() {
                    roots.add_config(&item.display, &crate::pagecode::decode_text(&text));
                }
            } else if name == "web.config" && !not_an_application(&item.components) {
                let folder = item
                    .display
                    .rfind(['/', '\\', '!'])
                    .map_or(item.display.as_str(), |i| &item.display[..i])
                    .to_string();
                roots.add_web_config(&folder, &item.components);
            }
        }
        let mut counts = vec![0u64; roots.roots.len()];
        let mut inetpub = 0u64;
        let mut kinds = Vec::with_capacity(items.len());
        let mut urls = Vec::with_capacity(items.len());
        for item in items {
            let c = &item.components;
            if !is_server_script(c) {
                kinds.push(None);
                urls.push(None);
                continue;
            }
            let root = roots.root_of(c);
            match root {
                Some(r) => counts[r] += 1,
                None if WebRoots::under_inetpub(c) => inetpub += 1,
                None => {
                    kinds.push(None);
                    urls.push(None);
                    continue;
                }
            }
            // Paths the classifier already claims keep their kind (logs, old web roots).
            kinds.push(
                matches!(classify(c, b"", "", false), Classification::Skipped(_))
                    .then_some(ArtefactKind::WebFile),
            );
            urls.push(root.and_then(|r| served_url(&roots.roots[r], c)));
        }
        let mut cov: Vec<exhunt_model::WebRootCoverage> = roots
            .roots
            .iter()
            .zip(&counts)
            .map(|(r, &scripts)| exhunt_model::WebRootCoverage {
                folder: r.physical.clone(),
                site: r.site.clone(),
                url: r.url.clone(),
                source: match &r.source {
                    RootSource::IisConfig(p) => p.clone(),
                    RootSource::WebConfig => "web.config".into(),
                    RootSource::Inetpub => "inetpub".into(),
                },
                scripts,
            })
            .collect();
        if inetpub > 0 {
            cov.push(exhunt_model::WebRootCoverage {
                folder: "inetpub".into(),
                site: None,
                url: None,
                source: "inetpub (scripts outside every configured site)".into(),
                scripts: inetpub,
            });
        }
        Served {
            coverage: cov,
            kinds,
            urls,
        }
    }
}

/// What the web roots say of the items of a target.
pub(super) struct Served {
    /// The served folders and the scripts read below each.
    pub(super) coverage: Vec<exhunt_model::WebRootCoverage>,
    /// Per item, `Some(WebFile)` for a script below a served folder that its path alone would not
    /// claim, so that it is read without `--deep`.
    pub(super) kinds: Vec<Option<ArtefactKind>>,
    /// Per item, the URL a configured site serves it under (its virtual path and the file's path
    /// below the folder), so that requests for it are found where the site really serves it.
    pub(super) urls: Vec<Option<String>>,
}

/// The URL a configured root serves a file under, from its virtual path (`/`, `/portal`).
fn served_url(root: &exhunt_sources::webroots::WebRoot, components: &[String]) -> Option<String> {
    let base = root.url.as_deref()?;
    let at = root.position(components)?;
    let rest = components.get(at + root.components.len()..)?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("{}/{}", base.trim_end_matches('/'), rest.join("/")))
}
