//! The coverage ledger of one server: what every file gave (kinds, event channels, builds seen,
//! host names, skipped files, problems), the per-rule cap on findings, and the time spans of the
//! HttpProxy logs the correlation needs.

use super::*;

/// What the files of one server gave, folded.
pub(super) struct Ledger {
    /// Coverage, complete but for the host split.
    pub(super) coverage: Coverage,
    /// Builds the logs name, with their first time.
    pub(super) builds: BTreeMap<String, Option<Timestamp>>,
    /// Host names the logs and events name, with how many files name each.
    hosts: HashMap<String, usize>,
}

impl Ledger {
    /// Folds the outcomes of every file of a server, the walk's problems and the correlation's
    /// notes.
    pub(super) fn fold(
        target: &std::path::Path,
        inv: &exhunt_sources::Inventory,
        outcomes: &[FileOutcome],
        web_roots: Vec<exhunt_model::WebRootCoverage>,
        notes: Vec<String>,
    ) -> Ledger {
        let mut kinds: BTreeMap<ArtefactKind, KindCoverage> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut problems = inv.problems.clone();
        problems.extend(notes.into_iter().map(|reason| {
            Problem::new(Cause::Note, reason)
                .at(target.display().to_string(), Some(ArtefactKind::Evtx))
        }));
        let mut builds: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
        let mut hosts: HashMap<String, usize> = HashMap::new();
        let mut channels: BTreeMap<(String, String), exhunt_model::ChannelCoverage> =
            BTreeMap::new();
        for o in outcomes {
            let item = &inv.items[o.item];
            problems.extend(o.problems.iter().cloned());
            if let Some(p) = &o.skipped {
                skipped.push(p.clone().at(item.display.clone(), o.kind));
            }
            let Some(kind) = o.kind else { continue };
            let kc = kinds.entry(kind).or_insert(KindCoverage {
                kind,
                files: 0,
                files_complete: 0,
                bytes: 0,
                records: 0,
                first: None,
                last: None,
                checked: true,
            });
            kc.files += 1;
            let Some(st) = &o.stats else { continue };
            if st.complete() {
                kc.files_complete += 1;
            }
            kc.bytes += st.bytes;
            kc.records += st.records;
            kc.first = min_opt(kc.first, st.first);
            kc.last = max_opt(kc.last, st.last);
            for p in &st.problems {
                problems.push(p.clone().at(item.display.clone(), Some(kind)));
            }
            for (b, t) in &st.versions {
                let e = builds.entry(normalise_build(b)).or_insert(*t);
                *e = min_opt(*e, *t);
            }
            for c in &st.channels {
                let key = (c.host.clone().unwrap_or_default(), c.channel.clone());
                let e = channels
                    .entry(key)
                    .or_insert_with(|| exhunt_model::ChannelCoverage {
                        channel: c.channel.clone(),
                        files: 0,
                        records: 0,
                        first: None,
                        last: None,
                        host: c.host.clone(),
                    });
                e.files += 1;
                e.records += c.records;
                e.first = min_opt(e.first, c.first);
                e.last = max_opt(e.last, c.last);
            }
            if let Some(h) = &st.host {
                *hosts.entry(h.clone()).or_default() += 1;
            }
        }
        let coverage = Coverage {
            web_roots,
            kinds: kinds.into_values().collect(),
            channels: channels.into_values().collect(),
            files_seen: inv.files_seen,
            skipped_folders: inv
                .unopened
                .iter()
                .map(|(folder, files)| exhunt_model::SkippedFolder {
                    folder: folder.clone(),
                    files: *files,
                    reason: NOT_OPENED.into(),
                })
                .collect(),
            skipped,
            problems,
        };
        Ledger {
            coverage,
            builds,
            hosts,
        }
    }

    /// The server's name: the host most files name, else the target's folder or file name.
    pub(super) fn server_name(&self, target: &std::path::Path) -> String {
        self.hosts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(h, _)| h.clone())
            .unwrap_or_else(|| {
                target
                    .file_name()
                    .map_or(target.display().to_string(), |n| {
                        n.to_string_lossy().into_owned()
                    })
            })
    }
}

/// Sorts findings in time order and keeps at most [`MAX_FINDINGS_PER_RULE`] per rule, counting
/// the rest. The cap is for noise (mass scanning, attempts): a finding that shows success or
/// persistence is never dropped, or a real exploit after a thousand failed attempts would vanish
/// from the verdict.
pub(super) fn cap_per_rule(findings: &mut Vec<Finding>) -> Vec<SuppressedCount> {
    findings.sort_by(|a, b| {
        (a.timestamp, &a.evidence.path, a.evidence.line, &a.rule_id).cmp(&(
            b.timestamp,
            &b.evidence.path,
            b.evidence.line,
            &b.rule_id,
        ))
    });
    let mut per_rule: HashMap<String, usize> = HashMap::new();
    let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
    findings.retain(|f| {
        if f.stage.is_compromise() {
            return true;
        }
        let n = per_rule.entry(f.rule_id.clone()).or_default();
        *n += 1;
        if *n > MAX_FINDINGS_PER_RULE {
            *suppressed.entry(f.rule_id.clone()).or_default() += 1;
            false
        } else {
            true
        }
    });
    suppressed
        .into_iter()
        .map(|(rule_id, count)| SuppressedCount { rule_id, count })
        .collect()
}

/// The time span and protocol folder of every HttpProxy log read: one request in two logs is
/// one step only where the other log could hold it (`crate::correlate`).
pub(super) fn proxy_spans(
    inv: &exhunt_sources::Inventory,
    outcomes: &[FileOutcome],
) -> Vec<crate::correlate::ProxySpan> {
    outcomes
        .iter()
        .filter(|o| o.kind == Some(ArtefactKind::HttpProxyLog))
        .filter_map(|o| {
            let st = o.stats.as_ref()?;
            Some(crate::correlate::ProxySpan::of(
                &inv.items[o.item].components,
                st.protocol.as_deref(),
                st.first,
                st.last,
            ))
        })
        .collect()
}
