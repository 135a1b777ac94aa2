//! The folders IIS serves in a target, and which scripts they make worth reading.

use super::*;

impl Engine {
    /// The folders IIS serves in this target (spec §5): the virtual directories of every
    /// `applicationHost.config` found, the folders holding a `web.config`, and `inetpub`. Returns
    /// their coverage and, per item, `Some(WebFile)` for a script below one of them that its path
    /// alone would not claim, so that it is read without `--deep`.
    pub(super) fn web_roots(
        &self,
        items: &[Item],
    ) -> (
        Vec<exhunt_model::WebRootCoverage>,
        Vec<Option<ArtefactKind>>,
    ) {
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
        let kinds = items
            .iter()
            .map(|item| {
                let c = &item.components;
                if !is_server_script(c) {
                    return None;
                }
                let root = roots.root_of(c);
                let under_inetpub = WebRoots::under_inetpub(c);
                match root {
                    Some(r) => counts[r] += 1,
                    None if under_inetpub => inetpub += 1,
                    None => return None,
                }
                // Paths the classifier already claims keep their kind (logs, old web roots).
                matches!(classify(c, b"", "", false), Classification::Skipped(_))
                    .then_some(ArtefactKind::WebFile)
            })
            .collect();
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
        (cov, kinds)
    }
}
