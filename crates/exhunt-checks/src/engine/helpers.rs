//! Helpers of the engine: splitting exported events by host, builds and times.

use super::*;

/// Event exports often hold the events of several servers: each host other than the target's
/// own becomes a server of its own, with its events' findings, its channels and the export files'
/// problems, so that each gets its own story and verdict.
pub(super) fn split_export_hosts(
    main: &str,
    findings: &mut Vec<Finding>,
    coverage: &mut Coverage,
) -> Vec<(String, Vec<Finding>, Coverage)> {
    // `EX01` (the logs' server name) and `EX01.contoso.local` (an event's Computer) are one
    // server: host names are compared by their first label.
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    let main_short = short(main);
    let hosts: std::collections::BTreeSet<String> = coverage
        .channels
        .iter()
        .filter_map(|c| c.host.clone())
        .filter(|h| short(h) != main_short)
        .collect();
    let export = coverage.kind(ArtefactKind::EventExport).cloned();
    let mut out = Vec::new();
    for host in hosts {
        let is_host = |f: &Finding| {
            f.kind == ArtefactKind::EventExport
                && f.entities
                    .server
                    .as_deref()
                    .is_some_and(|s| short(s) == short(&host))
        };
        let mine: Vec<Finding> = findings.iter().filter(|f| is_host(f)).cloned().collect();
        findings.retain(|f| !is_host(f));
        let (chs, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut coverage.channels)
            .into_iter()
            .partition(|c| c.host.as_deref().is_some_and(|h| short(h) == short(&host)));
        coverage.channels = rest;
        let mut kc = KindCoverage {
            kind: ArtefactKind::EventExport,
            files: chs.iter().map(|c| c.files).max().unwrap_or(0),
            files_complete: 0,
            bytes: 0,
            records: chs.iter().map(|c| c.records).sum(),
            first: chs.iter().filter_map(|c| c.first).min(),
            last: chs.iter().filter_map(|c| c.last).max(),
            checked: true,
        };
        let complete = export.as_ref().is_some_and(|e| e.files_complete == e.files);
        kc.files_complete = if complete { kc.files } else { 0 };
        let problems = coverage
            .problems
            .iter()
            .filter(|p| p.kind == Some(ArtefactKind::EventExport))
            .cloned()
            .collect();
        out.push((
            host,
            mine,
            Coverage {
                kinds: vec![kc],
                channels: chs,
                files_seen: 0,
                skipped: Vec::new(),
                skipped_folders: Vec::new(),
                web_roots: Vec::new(),
                problems,
            },
        ));
    }
    out
}

/// `15.01.2176.002` → `15.1.2176.2`.
pub(super) fn normalise_build(b: &str) -> String {
    match exhunt_rules::parse_build(b) {
        Some([a, b2, c, d]) => format!("{a}.{b2}.{c}.{d}"),
        None => b.to_string(),
    }
}

pub(super) fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

pub(super) fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl Engine {
    /// Runs `f` on the engine's pool, unless the caller is already one of its workers.
    pub(super) fn in_pool<R: Send>(&self, on_pool: bool, f: impl FnOnce() -> R + Send) -> R {
        if on_pool { f() } else { self.pool.install(f) }
    }
}
