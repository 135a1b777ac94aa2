//! The plan for people (text, HTML) and machines (JSON). Every string from evidence is escaped
//! for where it goes: the terminal (`safe::terminal`), HTML (`html::esc`), JSON (serde, with the
//! bidirectional overrides escaped too).

use std::fmt::Write as _;

use exhunt_report::html::esc;
use exhunt_report::safe::{json_text, terminal};

use crate::plan::{Action, Plan, ServerPlan};

/// The plan as JSON (the input of `apply`).
pub fn json(plan: &Plan) -> String {
    let s =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    format!("{}\n", json_text(&s))
}

fn t(s: &str) -> String {
    terminal(s).into_owned()
}

/// The plan as text.
pub fn text(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "exhunt remediation plan {} (from a result of {}; overall verdict {})",
        plan.id,
        t(&plan.result_tool),
        plan.verdict.label()
    );
    for sp in &plan.servers {
        server_text(&mut o, sp);
    }
    let _ = writeln!(
        o,
        "\nOnly quarantine actions are carried out by `exhunt remediate apply` (dry run unless --yes); the\nPowerShell is for an administrator to review and run in the Exchange Management Shell."
    );
    o
}

/// The findings an action cites: `F3 (f-…)` with their stable ids when the result has them.
fn cited(a: &Action) -> String {
    if a.finding_ids.len() != a.findings.len() {
        return a.findings.join(", ");
    }
    a.findings
        .iter()
        .zip(&a.finding_ids)
        .map(|(f, id)| format!("{f} ({id})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn server_text(o: &mut String, sp: &ServerPlan) {
    let n = sp.actions.len();
    let _ = writeln!(
        o,
        "\nServer {} — {} ({n} action{})",
        t(&sp.server),
        sp.verdict.label(),
        if n == 1 { "" } else { "s" }
    );
    for a in &sp.actions {
        let _ = writeln!(
            o,
            "\n  {} [{}, {}] {}",
            a.id,
            a.kind.label(),
            a.urgency.label(),
            t(&a.title)
        );
        let _ = writeln!(o, "     why: {}", t(&a.why));
        if !a.findings.is_empty() {
            let _ = writeln!(o, "     findings: {}", t(&cited(a)));
        }
        if let Some(f) = &a.file {
            let _ = writeln!(
                o,
                "     file: {} ({}){}",
                t(&f.path),
                f.what,
                match (&f.sha256, f.size) {
                    (Some(h), Some(n)) => format!(" SHA-256 {h}, {n} bytes"),
                    _ => " SHA-256 not measured (the file was not readable when planning; apply records it)".to_string(),
                }
            );
        }
        for it in &a.items {
            let _ = writeln!(o, "     - {}: {}", t(&it.name), t(&it.answer));
        }
        if let Some(ps) = &a.powershell {
            let _ = writeln!(o, "     PowerShell:");
            for l in ps.lines() {
                let _ = writeln!(o, "       {}", t(l));
            }
        }
    }
    if !sp.cannot_know.is_empty() {
        let _ = writeln!(o, "\n  What the evidence cannot tell:");
        for c in &sp.cannot_know {
            let _ = writeln!(o, "   - {}", t(c));
        }
    }
}

/// The plan as one self-contained HTML page.
pub fn html(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>exhunt remediation plan {id}</title>\n\
         <style>body{{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}}.immediate{{background:#fdd}}.high{{background:#fed}}\
         .review{{background:#eef}}pre{{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap}}</style></head><body>\n\
         <h1>Remediation plan {id}</h1><p>From a result of {tool}; overall verdict <b>{verdict}</b>. Only quarantine actions are carried out by <code>exhunt remediate apply</code>; the PowerShell is for an administrator to review and run.</p>\n",
        id = esc(&plan.id),
        tool = esc(&plan.result_tool),
        verdict = esc(plan.verdict.label()),
    );
    for sp in &plan.servers {
        let _ = write!(
            o,
            "<h2>Server {} — {}</h2>\n<table><tr><th>id</th><th>kind</th><th>urgency</th><th>action</th><th>why</th><th>findings</th></tr>\n",
            esc(&sp.server),
            esc(sp.verdict.label())
        );
        for a in &sp.actions {
            let mut detail = String::new();
            if let Some(f) = &a.file {
                let _ = write!(
                    detail,
                    "<br><code>{}</code> {} {}",
                    esc(&f.path),
                    esc(&f.what),
                    esc(f.sha256.as_deref().unwrap_or("SHA-256 not measured"))
                );
            }
            if !a.items.is_empty() {
                detail.push_str("<ul>");
                for it in &a.items {
                    let _ = write!(
                        detail,
                        "<li><b>{}</b>: {}</li>",
                        esc(&it.name),
                        esc(&it.answer)
                    );
                }
                detail.push_str("</ul>");
            }
            if let Some(ps) = &a.powershell {
                let _ = write!(detail, "<pre>{}</pre>", esc(ps));
            }
            let _ = writeln!(
                o,
                "<tr class=\"{u}\"><td>{id}</td><td>{k}</td><td>{u}</td><td>{title}{detail}</td><td>{why}</td><td>{f}</td></tr>",
                u = esc(a.urgency.label()),
                id = esc(&a.id),
                k = esc(a.kind.label()),
                title = esc(&a.title),
                why = esc(&a.why),
                f = esc(&cited(a)),
            );
        }
        o.push_str("</table>\n");
        if !sp.cannot_know.is_empty() {
            o.push_str("<h3>What the evidence cannot tell</h3><ul>");
            for c in &sp.cannot_know {
                let _ = write!(o, "<li>{}</li>", esc(c));
            }
            o.push_str("</ul>\n");
        }
    }
    o.push_str("</body></html>\n");
    o
}
