//! Renderers of a scan result: the terminal summary people read, and JSON, JSONL and a CSV
//! timeline that machines read.
//!
//! Renderers know findings, verdicts and coverage, never which check made a finding. The
//! terminal summary is ordered for a stressed administrator: verdicts first, then the story with
//! timestamps, then what was and was not read.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io::{self, Write};

pub mod html;
pub mod safe;
pub mod saved;

use exhunt_model::{
    Cause, Finding, Problem, ScanResult, ServerResult, Severity, Timestamp, VerdictKind,
};
use serde::Serialize;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Terminal summary.
    Text,
    /// The whole result as one JSON document (schema/scan-result.v1.json).
    Json,
    /// One finding per line.
    Jsonl,
    /// Timesketch-compatible CSV timeline.
    Csv,
    /// Timesketch-compatible JSON Lines timeline (the same events as the CSV).
    Timeline,
    /// One self-contained HTML page.
    Html,
}

/// Options of the text renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// ANSI colours.
    pub color: bool,
    /// List every finding and every coverage problem.
    pub verbose: bool,
}

/// Renders a result.
pub fn render(
    result: &ScanResult,
    format: Format,
    text: TextOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => render_text(result, text, out),
        Format::Json => {
            let text = serde_json::to_string_pretty(result).map_err(io::Error::other)?;
            writeln!(out, "{}", safe::json_text(&text))
        }
        Format::Jsonl => render_jsonl(result, out),
        Format::Csv => render_csv(result, out),
        Format::Timeline => render_timeline_jsonl(result, out),
        Format::Html => html::render_html(result, out),
    }
}

#[derive(Serialize)]
struct JsonlFinding<'a> {
    server: &'a str,
    server_verdict: VerdictKind,
    #[serde(flatten)]
    finding: &'a Finding,
}

fn render_jsonl(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    for s in &result.servers {
        for f in &s.findings {
            let line = JsonlFinding {
                server: &s.name,
                server_verdict: s.verdict,
                finding: f,
            };
            let text = serde_json::to_string(&line).map_err(io::Error::other)?;
            writeln!(out, "{}", safe::json_text(&text))?;
        }
    }
    Ok(())
}

fn iso(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One event of the super-timeline: a finding, or a context event that says what the findings
/// sit in (where each log kind and event channel begins and ends, when a build first shows, when
/// the fix of each campaign first shows).
struct Event<'a> {
    time: Option<Timestamp>,
    message: String,
    desc: String,
    finding: Option<&'a Finding>,
}

fn timeline(s: &ServerResult) -> Vec<Event<'_>> {
    let mut ev: Vec<Event<'_>> = s
        .findings
        .iter()
        .map(|f| Event {
            time: f.timestamp,
            // Timesketch cells stay on one line (chainsaw #89).
            message: f.title.replace(['\r', '\n'], " "),
            desc: format!("{} record time", f.kind.label()),
            finding: Some(f),
        })
        .collect();
    let mut context = |time: Option<Timestamp>, message: String, desc: String| {
        if time.is_some() {
            ev.push(Event {
                time,
                message,
                desc,
                finding: None,
            });
        }
    };
    for k in &s.coverage.kinds {
        for (t, what) in [(k.first, "First"), (k.last, "Last")] {
            context(
                t,
                format!("{what} record of {} ({} files)", k.kind.label(), k.files),
                format!("{} coverage {}", k.kind.label(), what.to_lowercase()),
            );
        }
    }
    for c in &s.coverage.channels {
        for (t, what) in [(c.first, "First"), (c.last, "Last")] {
            context(
                t,
                format!(
                    "{what} event of the {} channel ({} events)",
                    c.channel, c.records
                ),
                format!("event channel coverage {}", what.to_lowercase()),
            );
        }
    }
    if let Some(v) = s.verdicts.first() {
        for b in &v.builds_seen {
            context(
                b.first_seen,
                format!("Exchange build {} first seen in the logs", b.build),
                "build first seen".into(),
            );
        }
    }
    for v in &s.verdicts {
        let patched = v
            .builds_seen
            .iter()
            .filter(|b| b.fixed == Some(true))
            .filter_map(|b| b.first_seen.map(|t| (t, b.build.as_str())))
            .min();
        if let Some((t, build)) = patched {
            context(
                Some(t),
                format!(
                    "First build with the fix for {} seen in the logs ({build})",
                    v.campaign.label()
                ),
                "patch first seen".into(),
            );
        }
    }
    ev.sort_by_key(|e| e.time);
    ev
}

const CSV_COLUMNS: [&str; 16] = [
    "message",
    "datetime",
    "timestamp_desc",
    "server",
    "rule_id",
    "campaign",
    "stage",
    "severity",
    "confidence",
    "cves",
    "client_ip",
    "url",
    "status",
    "file_path",
    "source_path",
    "source_line",
];

fn render_csv(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for s in &result.servers {
        for e in timeline(s) {
            let mut row = vec![String::new(); CSV_COLUMNS.len()];
            row[0] = e.message;
            row[1] = e.time.as_ref().map(iso).unwrap_or_default();
            row[2] = e.desc;
            row[3] = s.name.clone();
            match e.finding {
                Some(f) => {
                    row[4] = f.rule_id.clone();
                    row[5] = format!("{:?}", f.campaign);
                    row[6] = f.stage.label().to_string();
                    row[7] = format!("{:?}", f.severity).to_lowercase();
                    row[8] = format!("{:?}", f.confidence).to_lowercase();
                    row[9] = f.cves.join(" ");
                    row[10] = f.entities.client_ip.clone().unwrap_or_default();
                    row[11] = f.entities.url.clone().unwrap_or_default();
                    row[12] = f.entities.status.map(|c| c.to_string()).unwrap_or_default();
                    row[13] = f.entities.file_path.clone().unwrap_or_default();
                    row[14] = f.evidence.path.clone();
                    row[15] = f.evidence.line.to_string();
                }
                None => row[6] = "context".into(),
            }
            w.write_record(row.iter().map(|c| safe::csv_cell(c).into_owned()))?;
        }
    }
    w.flush()
}

#[derive(Serialize)]
struct TimelineLine<'a> {
    message: &'a str,
    datetime: String,
    timestamp_desc: &'a str,
    server: &'a str,
    tag: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    finding: Option<&'a Finding>,
}

fn render_timeline_jsonl(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    for s in &result.servers {
        for e in timeline(s) {
            let line = TimelineLine {
                message: &e.message,
                datetime: e.time.as_ref().map(iso).unwrap_or_default(),
                timestamp_desc: &e.desc,
                server: &s.name,
                tag: if e.finding.is_some() {
                    "finding"
                } else {
                    "context"
                },
                finding: e.finding,
            };
            let text = serde_json::to_string(&line).map_err(io::Error::other)?;
            writeln!(out, "{}", safe::json_text(&text))?;
        }
    }
    Ok(())
}

struct Paint {
    on: bool,
}

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn verdict(&self, v: VerdictKind) -> String {
        let label = v.label().to_uppercase();
        match v {
            VerdictKind::Compromised => self.c("1;41;97", &format!(" {label} ")),
            VerdictKind::Attempted => self.c("1;43;30", &format!(" {label} ")),
            VerdictKind::Inconclusive => self.c("1;45;97", &format!(" {label} ")),
            VerdictKind::NoEvidence => self.c("1;42;30", &format!(" {label} ")),
        }
    }
    fn bold(&self, s: &str) -> String {
        self.c("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.c("2", s)
    }
}

fn short_time(t: Option<Timestamp>) -> String {
    t.map_or("(undated)       ".into(), |t| {
        t.format("%Y-%m-%d %H:%M").to_string()
    })
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn render_text(result: &ScanResult, opts: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let result = &safe::for_terminal(result);
    let p = Paint { on: opts.color };
    for s in &result.servers {
        server_text(s, &p, opts, out)?;
    }
    if result.servers.len() > 1 {
        writeln!(out, "{} {}", p.bold("Overall:"), p.verdict(result.verdict))?;
    }
    let code = result.verdict.exit_code();
    writeln!(
        out,
        "{}",
        p.dim(&format!(
            "exit code {code} ({}); full detail: --format json, --verbose",
            match result.verdict {
                VerdictKind::NoEvidence => "no evidence",
                VerdictKind::Attempted | VerdictKind::Compromised => "findings",
                VerdictKind::Inconclusive => "inconclusive",
            }
        ))
    )
}

fn server_text(
    s: &ServerResult,
    p: &Paint,
    opts: TextOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "{} {}  {}",
        p.bold("Server"),
        p.bold(&s.name),
        p.dim(&s.targets.join(", "))
    )?;
    writeln!(out)?;
    for v in &s.verdicts {
        writeln!(out, "  {:<40} {}", v.campaign.label(), p.verdict(v.verdict))?;
        writeln!(out, "  {}", v.summary)?;
        for r in &v.reasons {
            writeln!(out, "    - {r}")?;
        }
        match v.patched_before_first_evidence {
            Some(true) => writeln!(
                out,
                "    - the server ran a patched build before the first evidence"
            )?,
            Some(false) => writeln!(
                out,
                "    - the server was still vulnerable at the first evidence{}",
                v.window_end.map_or(String::new(), |e| format!(
                    "; a patched build shows from {}",
                    e.format("%Y-%m-%d %H:%M UTC")
                ))
            )?,
            None => {}
        }
    }
    writeln!(out)?;
    if !s.story.is_empty() {
        writeln!(out, "{}", p.bold("What happened (UTC)"))?;
        for step in &s.story {
            let when = match (step.start, step.end) {
                (Some(a), Some(b)) if b > a => {
                    format!("{} → {}", short_time(Some(a)), b.format("%m-%d %H:%M"))
                }
                (a, _) => format!("{:<28}", short_time(a)),
            };
            let stage = exhunt_model::stage_label(step.stage, step.outcome);
            let stage = if step.stage.is_compromise() {
                p.c("31;1", &format!("{stage:<17}"))
            } else {
                format!("{stage:<17}")
            };
            writeln!(out, "  {when:<28}  {stage} {}", step.summary)?;
        }
        writeln!(out)?;
    }
    if opts.verbose && !s.findings.is_empty() {
        writeln!(out, "{}", p.bold("Findings"))?;
        for f in &s.findings {
            writeln!(
                out,
                "  {} {:<9} {:<8} {}  {}",
                short_time(f.timestamp),
                f.rule_id,
                format!("{:?}", f.severity).to_lowercase(),
                f.title,
                p.dim(&format!("{}:{}", f.evidence.path, f.evidence.line))
            )?;
        }
        writeln!(out)?;
    }
    let mut sev: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in &s.findings {
        *sev.entry(f.severity).or_default() += 1;
    }
    let suppressed: u64 = s.suppressed.iter().map(|x| x.count).sum();
    if !s.findings.is_empty() {
        let parts: Vec<String> = sev
            .iter()
            .rev()
            .map(|(k, n)| format!("{n} {}", format!("{k:?}").to_lowercase()))
            .collect();
        writeln!(
            out,
            "{} {} ({}){}",
            p.bold("Findings:"),
            s.findings.len(),
            parts.join(", "),
            if suppressed > 0 {
                format!("; {suppressed} more counted, not stored (per-rule cap)")
            } else {
                String::new()
            }
        )?;
        writeln!(out)?;
    }
    writeln!(out, "{}", p.bold("Coverage (what was read)"))?;
    for k in &s.coverage.kinds {
        let span = match (k.first, k.last) {
            (Some(a), Some(b)) => format!("{} → {}", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
            _ => "no dated records".into(),
        };
        if k.checked {
            let incomplete = k.files - k.files_complete;
            writeln!(
                out,
                "  {:<20} {:>5} files {:>10}  {}{}",
                k.kind.label(),
                k.files,
                human_bytes(k.bytes),
                span,
                if incomplete > 0 {
                    format!("  ({incomplete} incomplete)")
                } else {
                    String::new()
                }
            )?;
        } else {
            writeln!(
                out,
                "  {:<20} {:>5} files  recognised, not read by this version",
                k.kind.label(),
                k.files
            )?;
        }
    }
    for c in &s.coverage.channels {
        let span = match (c.first, c.last) {
            (Some(a), Some(b)) => format!("{} → {}", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
            _ => "no dated events".into(),
        };
        let name = if c.channel.is_empty() {
            "(no channel)"
        } else {
            c.channel.as_str()
        };
        writeln!(out, "    {name:<46} {:>9} events  {span}", c.records)?;
    }
    if s.coverage.kinds.is_empty() {
        writeln!(out, "  no Exchange or IIS log found")?;
    }
    // The served folders: configured sites first, then application folders found by their
    // web.config. Exchange's own applications are many; without -v only those with scripts.
    let roots: Vec<_> = s
        .coverage
        .web_roots
        .iter()
        .filter(|r| opts.verbose || r.scripts > 0 || r.site.is_some())
        .collect();
    if !roots.is_empty() {
        writeln!(out, "  web roots (scripts read without --deep)")?;
        for r in roots
            .iter()
            .take(if opts.verbose { usize::MAX } else { 12 })
        {
            let name = match (&r.site, &r.url) {
                (Some(site), Some(url)) => format!("site \"{site}\" {url}"),
                _ => r.source.clone(),
            };
            let read = if r.scripts == 0 {
                "no script in the target".to_string()
            } else {
                format!("{} script(s) read", r.scripts)
            };
            writeln!(out, "    {name:<36} {}  {read}", r.folder)?;
        }
        if !opts.verbose && roots.len() > 12 {
            writeln!(out, "    … {} more (-v lists them)", roots.len() - 12)?;
        }
    }
    // Skipped files by cause, and under each cause its messages, most frequent first.
    let mut causes: BTreeMap<Cause, BTreeMap<&str, usize>> = BTreeMap::new();
    for e in &s.coverage.skipped {
        *causes
            .entry(e.cause)
            .or_default()
            .entry(e.reason.as_str())
            .or_default() += 1;
    }
    for f in &s.coverage.skipped_folders {
        *causes
            .entry(Cause::NotRead)
            .or_default()
            .entry(f.reason.as_str())
            .or_default() += f.files as usize;
    }
    let skipped: usize = causes.values().flat_map(|m| m.values()).sum();
    writeln!(
        out,
        "  {} files seen; {skipped} skipped",
        s.coverage.files_seen,
    )?;
    let per_cause = if opts.verbose { usize::MAX } else { 3 };
    for (cause, reasons) in &causes {
        let n: usize = reasons.values().sum();
        writeln!(out, "    {n:>6} × {cause}")?;
        let mut reasons: Vec<(&str, usize)> = reasons.iter().map(|(r, n)| (*r, *n)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (r, n) in reasons.iter().take(per_cause) {
            writeln!(out, "             {n:>6} × {r}")?;
        }
        if reasons.len() > per_cause {
            writeln!(
                out,
                "             … {} more reasons (--verbose)",
                reasons.len() - per_cause
            )?;
        }
    }
    if !s.coverage.problems.is_empty() {
        let lost = s
            .coverage
            .problems
            .iter()
            .filter(|e| e.evidence_lost)
            .count();
        writeln!(
            out,
            "  {} problem(s), {} of which may lose evidence:",
            s.coverage.problems.len(),
            lost
        )?;
        // Grouped by cause, in the order of the causes; at most ten lines each unless verbose.
        let mut by_cause: BTreeMap<Cause, Vec<&Problem>> = BTreeMap::new();
        for e in &s.coverage.problems {
            by_cause.entry(e.cause).or_default().push(e);
        }
        let limit = if opts.verbose { usize::MAX } else { 10 };
        for (cause, list) in &by_cause {
            let lost = list.iter().filter(|e| e.evidence_lost).count();
            writeln!(
                out,
                "    {cause} ({}, {lost} may lose evidence):",
                list.len()
            )?;
            for e in list.iter().take(limit) {
                let at = e.line.map_or(String::new(), |l| format!(":{l}"));
                let mark = if e.evidence_lost {
                    p.c("33", "!")
                } else {
                    " ".into()
                };
                writeln!(out, "     {mark} {}{at}: {}", e.path, e.reason)?;
            }
            if list.len() > limit {
                writeln!(out, "      … {} more (--verbose)", list.len() - limit)?;
            }
        }
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use exhunt_model::ArtefactKind;

    /// The bundled compromised example's saved result (the CLI's snapshot), with problems of
    /// three causes put in.
    fn result_with_problems() -> ScanResult {
        // The snapshot stands in placeholders for the scan's own times.
        let text = include_str!("../../exhunt/tests/snapshots/compromised.json")
            .replace("\"STARTED\"", "\"2026-11-30T10:00:00Z\"")
            .replace("\"FINISHED\"", "\"2026-11-30T10:00:01Z\"");
        let mut r: ScanResult = serde_json::from_str(&text).unwrap();
        let problems = &mut r.servers[0].coverage.problems;
        problems.clear();
        for (cause, path, reason, lost) in [
            (
                Cause::Truncated,
                "a.log",
                "file ends without a line end",
                false,
            ),
            (
                Cause::Unreadable,
                "b.log",
                "cannot open: access denied",
                true,
            ),
            (
                Cause::Truncated,
                "c.log",
                "file ends without a line end",
                true,
            ),
            (Cause::Other, "d.log", "saved by an older version", false),
        ] {
            problems.push(
                Problem::new(cause, reason)
                    .at(path, Some(ArtefactKind::IisLog))
                    .lost(lost),
            );
        }
        r
    }

    #[test]
    fn text_groups_problems_by_cause() {
        let mut out = Vec::new();
        render(
            &result_with_problems(),
            Format::Text,
            TextOptions::default(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let at = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s:?} not in\n{text}"))
        };
        assert!(text.contains("4 problem(s), 2 of which may lose evidence:"));
        // One heading per cause, in the order of the causes, each listing its own files.
        let (unreadable, truncated, other) = (
            at("unreadable (1, 1 may lose evidence):"),
            at("truncated (2, 1 may lose evidence):"),
            at("other (1, 0 may lose evidence):"),
        );
        assert!(unreadable < truncated && truncated < other);
        assert!(truncated < at("a.log:") && at("c.log:") < other);
        assert!(unreadable < at("b.log:") && at("b.log:") < truncated);
    }

    #[test]
    fn html_counts_problems_by_cause() {
        let mut out = Vec::new();
        render(
            &result_with_problems(),
            Format::Html,
            TextOptions::default(),
            &mut out,
        )
        .unwrap();
        let html = String::from_utf8(out).unwrap();
        assert!(
            html.contains("4 problem(s) while reading: unreadable 1 (1 may lose evidence); truncated 2 (1 may lose evidence); other 1 (0 may lose evidence)"),
            "{html}"
        );
    }
}
