//! The HTML report: one self-contained file (inline CSS, inline SVG, a few lines of inline
//! script, no external asset) that a manager or an auditor can open offline.
//!
//! Per server: the verdict banner of each campaign with its reasons, the attack story drawn on a
//! time axis, the coverage of each artefact kind drawn against each campaign's exposure window,
//! and the findings in a table that can be filtered and sorted.

use std::fmt::Write as _;
use std::io::{self, Write};

use exhunt_model::{ScanResult, ServerResult, Timestamp, VerdictKind};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Line breaks and tabs are layout in HTML; other controls are shown, not obeyed.
            c if (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                o.push_str(&crate::safe::terminal(c.encode_utf8(&mut [0; 4])))
            }
            c => o.push(c),
        }
    }
    o
}

fn verdict_class(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Compromised => "compromised",
        VerdictKind::Attempted => "attempted",
        VerdictKind::Inconclusive => "inconclusive",
        VerdictKind::NoEvidence => "no-evidence",
    }
}

fn day(t: &Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d1d1f;background:#fafafa}\
.rule{border-top:1px solid #ddd;padding:.2em 0}.rule h3{font-size:1.05em}h1{font-size:1.6em;margin:0 0 .2em}h2{margin-top:2em;border-bottom:2px solid #ddd}h3{margin:1.4em 0 .4em}\
.banner{border-radius:6px;padding:.6em 1em;margin:.5em 0;color:#fff}.banner p{margin:.2em 0}\
.banner ul{margin:.3em 0 .2em 1.2em;padding:0}.compromised{background:#b3261e}.attempted{background:#b26a00}\
.inconclusive{background:#6a3d9a}.no-evidence{background:#2e7d32}.meta{color:#555}\
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}\
th{background:#eee;cursor:pointer;user-select:none}td.ex{font-family:monospace;font-size:12px;word-break:break-all}\
input.filter{margin:.4em 0;padding:4px 6px;width:24em}svg{background:#fff;border:1px solid #ddd;max-width:100%}\
.sev-critical{color:#b3261e;font-weight:bold}.sev-high{color:#c2410c}.sev-medium{color:#b26a00}";

const SCRIPT: &str = "function exf(i){var q=document.getElementById('f'+i).value.toLowerCase();\
var rows=document.querySelectorAll('#t'+i+' tbody tr');for(var r of rows){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';}}\
function exs(i,c){var t=document.getElementById('t'+i),b=t.tBodies[0],rows=Array.from(b.rows);\
var d=t.getAttribute('data-d')==c?-1:1;t.setAttribute('data-d',d==1?c:'');\
rows.sort(function(a,x){var p=a.cells[c].textContent,q=x.cells[c].textContent;return p<q?-d:p>q?d:0;});\
for(var r of rows){b.appendChild(r);}}";

/// Renders the whole result as one HTML page.
pub fn render_html(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>exhunt report</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>exhunt report</h1><p class=\"meta\">{} {} · scanned {} → {} · result schema {}</p>",
        esc(&result.tool.name),
        esc(&result.tool.version),
        esc(&result.started.to_rfc3339()),
        esc(&result.finished.to_rfc3339()),
        esc(&result.schema_version)
    );
    let _ = write!(
        h,
        "<div class=\"banner {}\"><p><b>Overall: {}</b> ({} server(s))</p></div>",
        verdict_class(result.verdict),
        esc(&result.verdict.label().to_uppercase()),
        result.servers.len()
    );
    for (i, s) in result.servers.iter().enumerate() {
        server(&mut h, i, s);
    }
    rule_references(&mut h, result);
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    out.write_all(h.as_bytes())
}

fn server(h: &mut String, i: usize, s: &ServerResult) {
    let _ = write!(
        h,
        "<h2 id=\"server-{i}\">Server {}</h2><p class=\"meta\">{}</p>",
        esc(&s.name),
        esc(&s.targets.join(", "))
    );
    for v in &s.verdicts {
        let _ = write!(
            h,
            "<div class=\"banner {}\"><p><b>{}: {}</b></p><p>{}</p><ul>",
            verdict_class(v.verdict),
            esc(v.campaign.label()),
            esc(&v.verdict.label().to_uppercase()),
            esc(&v.summary)
        );
        for r in &v.reasons {
            let _ = write!(h, "<li>{}</li>", esc(r));
        }
        h.push_str("</ul></div>");
    }
    story_chart(h, s);
    coverage_chart(h, s);
    findings_table(h, i, s);
}

/// The time axis of a chart: from the earliest to the latest time shown, drawn from `x0` over
/// `width` pixels of a 900-pixel-wide SVG.
struct Axis {
    t0: Timestamp,
    t1: Timestamp,
    x0: f64,
    width: f64,
}

impl Axis {
    /// An axis over `times`, or `None` when there is no time to draw.
    fn spanning(times: &[Timestamp], x0: f64, width: f64) -> Option<Axis> {
        Some(Axis {
            t0: *times.iter().min()?,
            t1: *times.iter().max()?,
            x0,
            width,
        })
    }

    fn x(&self, t: &Timestamp) -> f64 {
        let span = (self.t1.timestamp() - self.t0.timestamp()).max(1) as f64;
        self.x0 + (t.timestamp() - self.t0.timestamp()) as f64 / span * self.width
    }

    /// Opens the chart's SVG element.
    fn open(&self, h: &mut String, label: &str, height: usize) {
        let _ = write!(
            h,
            "<svg role=\"img\" aria-label=\"{}\" width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\" xmlns=\"http://www.w3.org/2000/svg\">",
            esc(label)
        );
    }

    /// Writes the times at both ends of the axis and closes the SVG element.
    fn close(&self, h: &mut String, height: usize, fmt: &str) {
        let _ = write!(
            h,
            "<text x=\"{:.0}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text><text x=\"880\" y=\"{}\" font-size=\"11\" fill=\"#555\" text-anchor=\"end\">{}</text></svg>",
            self.x0,
            height - 5,
            esc(&self.t0.format(fmt).to_string()),
            height - 5,
            esc(&self.t1.format(fmt).to_string())
        );
    }
}

fn story_chart(h: &mut String, s: &ServerResult) {
    h.push_str("<h3>What happened</h3>");
    let times: Vec<Timestamp> = s
        .story
        .iter()
        .flat_map(|st| [st.start, st.end])
        .flatten()
        .collect();
    let Some(axis) = Axis::spanning(&times, 20.0, 860.0) else {
        h.push_str("<p>No finding.</p>");
        return;
    };
    let height = 40 + s.story.len() * 22;
    axis.open(h, "attack story on a time axis", height);
    for (n, st) in s.story.iter().enumerate() {
        let y = 20 + n * 22;
        let (Some(a), Some(b)) = (st.start.or(st.end), st.end.or(st.start)) else {
            continue;
        };
        let (xa, xb) = (axis.x(&a), axis.x(&b));
        let color = if st.stage.is_compromise() {
            "#b3261e"
        } else if st.stage == exhunt_model::Stage::Scan
            || st.outcome == Some(exhunt_model::Outcome::Refused)
        {
            "#888"
        } else {
            "#b26a00"
        };
        // Labels sit right of their bar, or left of it in the right half of the chart.
        let (tx, anchor, ink) = if xb > 650.0 && xa < 250.0 {
            (xa + 6.0, "start", "#fff") // a long bar: the label goes inside it
        } else if xa > 450.0 {
            (xa - 6.0, "end", "#1d1d1f")
        } else {
            (xb.max(xa + 4.0) + 6.0, "start", "#1d1d1f")
        };
        let _ = write!(
            h,
            "<g><title>{} — {} ({} finding(s))</title><rect x=\"{xa:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\" rx=\"3\" fill=\"{color}\"/><text x=\"{tx:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"{ink}\">{}</text></g>",
            esc(&a.format("%Y-%m-%d %H:%M").to_string()),
            esc(&st.summary),
            st.count,
            y,
            (xb - xa).max(4.0),
            y + 11,
            esc(&truncate(
                &format!(
                    "{}: {}",
                    exhunt_model::stage_label(st.stage, st.outcome),
                    st.summary
                ),
                100
            ))
        );
    }
    axis.close(h, height, "%Y-%m-%d %H:%M UTC");
}

fn coverage_chart(h: &mut String, s: &ServerResult) {
    h.push_str("<h3>Coverage against the exposure windows</h3>");
    let mut times: Vec<Timestamp> = Vec::new();
    for k in &s.coverage.kinds {
        times.extend(k.first);
        times.extend(k.last);
    }
    for v in &s.verdicts {
        times.push(v.window_start);
        times.extend(v.window_end);
    }
    let Some(axis) = Axis::spanning(&times, 220.0, 660.0) else {
        h.push_str("<p>Nothing dated was read.</p>");
        return;
    };
    let t1 = axis.t1;
    let rows: Vec<(String, Option<Timestamp>, Option<Timestamp>, &str)> = s
        .verdicts
        .iter()
        .filter(|v| v.campaign != exhunt_model::Campaign::PostExploitation)
        .map(|v| {
            (
                format!("window: {}", v.campaign.label()),
                Some(v.window_start),
                Some(v.window_end.unwrap_or(t1)),
                "#c9b3e6",
            )
        })
        .chain(
            s.coverage
                .kinds
                .iter()
                .map(|k| (k.kind.label().to_string(), k.first, k.last, "#4a7bd0")),
        )
        .collect();
    let height = 30 + rows.len() * 20;
    axis.open(
        h,
        "coverage of each artefact kind against each campaign's exposure window",
        height,
    );
    for (n, (label, a, b, color)) in rows.iter().enumerate() {
        let y = 10 + n * 20;
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>",
            y + 11,
            esc(label)
        );
        if let (Some(a), Some(b)) = (a, b) {
            let (xa, xb) = (axis.x(a), axis.x(b));
            let _ = write!(
                h,
                "<rect x=\"{xa:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"13\" fill=\"{color}\"><title>{} → {}</title></rect>",
                (xb - xa).max(2.0),
                day(a),
                day(b)
            );
        }
    }
    axis.close(h, height, "%Y-%m-%d");
    // Problems while reading, counted by cause (the JSON result lists each).
    let mut causes: std::collections::BTreeMap<exhunt_model::Cause, (usize, usize)> =
        std::collections::BTreeMap::new();
    for p in &s.coverage.problems {
        let e = causes.entry(p.cause).or_default();
        e.0 += 1;
        e.1 += usize::from(p.evidence_lost);
    }
    let by_cause: Vec<String> = causes
        .iter()
        .map(|(c, (n, lost))| format!("{c} {n} ({lost} may lose evidence)"))
        .collect();
    let _ = write!(
        h,
        "<p class=\"meta\">{} files seen; {} problem(s) while reading{}{} (see the JSON result for each).</p>",
        s.coverage.files_seen,
        s.coverage.problems.len(),
        if by_cause.is_empty() { "" } else { ": " },
        esc(&by_cause.join("; "))
    );
}

fn findings_table(h: &mut String, i: usize, s: &ServerResult) {
    let _ = write!(
        h,
        "<h3>Findings ({})</h3><input class=\"filter\" id=\"f{i}\" placeholder=\"filter findings…\" oninput=\"exf({i})\"><table id=\"t{i}\"><thead><tr>",
        s.findings.len()
    );
    for (c, name) in [
        "time", "rule", "campaign", "stage", "severity", "finding", "evidence",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(h, "<th onclick=\"exs({i},{c})\">{name}</th>");
    }
    h.push_str("</tr></thead><tbody>");
    for f in &s.findings {
        let sev = format!("{:?}", f.severity).to_lowercase();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"sev-{sev}\">{sev}</td><td>{}</td><td class=\"ex\">{}:{}<br>{}</td></tr>",
            f.timestamp
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            rule_link(&f.rule_id),
            esc(f.campaign.label()),
            esc(exhunt_model::stage_label(f.stage, f.outcome)),
            esc(&f.title),
            esc(&f.evidence.path),
            f.evidence.line,
            esc(&truncate(&f.evidence.excerpt, 300))
        );
    }
    h.push_str("</tbody></table>");
}

/// The rule id as a link to its entry in the rule references.
fn rule_link(id: &str) -> String {
    format!("<a href=\"#rule-{0}\">{0}</a>", esc(id))
}

/// What each rule that fired is, as the scan saved it (`rules.fired`): title, CVEs, ATT&CK, the
/// section of the detection spec it implements, false positives and references. Rules from
/// `--sigma` or `--yara` are named as external: their text is in the rule files the scan loaded.
/// A result of an older exhunt saved no rule text: the report says so rather than show today's.
fn rule_references(h: &mut String, result: &ScanResult) {
    let mut ids: Vec<&str> = result
        .servers
        .iter()
        .flat_map(|s| s.findings.iter().map(|f| f.rule_id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"rules\">Rules</h2><div class=\"rules\">");
    for id in ids {
        let _ = write!(h, "<div class=\"rule\" id=\"rule-{}\">", esc(id));
        match result.rules.fired.iter().find(|r| r.id == id) {
            Some(r) => {
                let _ = write!(
                    h,
                    "<h3>{} — {}</h3><p class=\"meta\">{} · {} · ATT&amp;CK {} · {} severity · spec {}</p><p>{}</p>",
                    esc(&r.id),
                    esc(&r.title),
                    esc(r.campaign.label()),
                    esc(&r.cves.join(", ")),
                    esc(&r.attack),
                    esc(&format!("{:?}", r.severity).to_lowercase()),
                    esc(&r.spec),
                    esc(&r.description)
                );
                if !r.false_positives.is_empty() {
                    let _ = write!(
                        h,
                        "<p><i>False positives:</i> {}</p>",
                        esc(&r.false_positives)
                    );
                }
                h.push_str("<ul>");
                for reference in &r.references {
                    let _ = write!(h, "<li>{}</li>", esc(reference));
                }
                h.push_str("</ul>");
            }
            None if id.starts_with("EXH-") => {
                let _ = write!(
                    h,
                    "<h3>{}</h3><p>A built-in rule; this result was saved by an exhunt that did not keep the rule text with it (see <code>exhunt rules show {}</code> for today's text).</p>",
                    esc(id),
                    esc(id)
                );
            }
            None => {
                let _ = write!(
                    h,
                    "<h3>{}</h3><p>An external rule (loaded with <code>--sigma</code> or <code>--yara</code>): its text, author and references are in the rule file the scan read.</p>",
                    esc(id)
                );
            }
        }
        h.push_str("</div>");
    }
    h.push_str("</div>");
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
