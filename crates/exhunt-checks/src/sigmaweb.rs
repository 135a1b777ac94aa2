//! Sigma `webserver` rules (loaded with `--sigma`) on IIS W3C records.
//!
//! The rules name W3C fields (`cs-uri-query`, `cs-method`, `sc-status`, `c-ip`, `cs-user-agent`,
//! `cs-referer`). Two conventions differ from raw IIS logs and are bridged here: SigmaHQ's rules
//! put URL *paths* in `cs-uri-query` (the generic web-server taxonomy keeps the whole URI there),
//! so `cs-uri-query` is served as the stem plus `?query`; and IIS writes `-` for an empty field,
//! which Sigma calls null. User agents are served with IIS's `+` turned back into spaces.
//!
//! A rule set's literals are not known to the block prefilter, so when web rules are loaded every
//! IIS line is a candidate: `--sigma` with web rules costs a field split per IIS line.

use std::borrow::Cow;
use std::sync::Arc;

use exhunt_model::{ArtefactKind, Evidence};
use exhunt_rules::sigma::Document;
use exhunt_sources::Record;

use crate::check::request_entities;
use crate::check::{Emitter, LineCheck, MAX_EXCERPT};
use crate::events::EventChecker;

/// The web server rules of a Sigma set, as a line check over IIS logs.
pub struct SigmaWeb {
    events: Arc<EventChecker>,
}

impl SigmaWeb {
    /// A check over the web rules of `events`' rule set.
    pub fn new(events: Arc<EventChecker>) -> SigmaWeb {
        SigmaWeb { events }
    }
}

struct IisDoc<'r, 'a> {
    rec: &'r Record<'a>,
}

impl IisDoc<'_, '_> {
    fn raw_field(&self, name: &str) -> Option<&str> {
        self.rec.get(name).filter(|v| !v.is_empty() && *v != "-")
    }
}

impl Document for IisDoc<'_, '_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "cs-uri-query" | "c-uri" => {
                let stem = self.raw_field("cs-uri-stem");
                let query = self.raw_field("cs-uri-query");
                match (stem, query) {
                    (Some(s), Some(q)) => Some(Cow::Owned(format!("{s}?{q}"))),
                    (Some(s), None) => Some(Cow::Borrowed(s)),
                    (None, q) => q.map(Cow::Borrowed),
                }
            }
            "cs-user-agent" | "c-useragent" | "cs(User-Agent)" => self
                .raw_field("cs(User-Agent)")
                .map(|u| Cow::Owned(u.replace('+', " "))),
            "cs-referer" | "cs-referrer" | "cs(Referer)" => {
                self.raw_field("cs(Referer)").map(Cow::Borrowed)
            }
            "cs-host" | "cs(Host)" => self
                .raw_field("cs-host")
                .or_else(|| self.raw_field("cs(Host)"))
                .map(Cow::Borrowed),
            other => self.raw_field(other).map(Cow::Borrowed),
        }
    }

    fn any_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        f(self.rec.raw)
    }
}

impl LineCheck for SigmaWeb {
    fn rule_ids(&self) -> &[&'static str] {
        &[]
    }
    fn kinds(&self) -> &[ArtefactKind] {
        &[ArtefactKind::IisLog]
    }
    fn prefilter(&self, _: ArtefactKind) -> Vec<String> {
        // Any character: every non-empty line is a candidate (see the module docs).
        vec![".".into()]
    }
    fn check(&self, kind: ArtefactKind, rec: &Record<'_>, out: &mut Emitter<'_>) {
        let doc = IisDoc { rec };
        let mut excerpt = rec.raw.to_string();
        exhunt_sources::event::truncate(&mut excerpt, MAX_EXCERPT - 4);
        let evidence = Evidence {
            path: out.path().to_string(),
            line: rec.line,
            offset: rec.offset,
            excerpt,
        };
        let entities = request_entities(rec, kind);
        for f in self
            .events
            .check_web(&doc, rec.timestamp(), &evidence, &entities)
        {
            out.push(f);
        }
    }
}
