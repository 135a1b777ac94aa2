//! Output of a probe run: a text table, JSON, JSONL (one row per line, what `--resume` reads)
//! and CSV. Rows are written as they finish; only JSON keeps them until the end.

use std::io::Write;

use crate::model::{PROBE_SCHEMA, Row, State, Summary};
use crate::run::{RowSink, flush_quietly};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people, then the summary.
    Text,
    /// One JSON document: meta, summary, rows.
    Json,
    /// One row per line.
    Jsonl,
    /// One row per line, flat columns.
    Csv,
}

/// A sink writing one of the formats.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    verbose: bool,
    rows: Vec<Row>,
    header_done: bool,
    hidden: u64,
    meta: serde_json::Value,
    since_flush: u32,
}

impl<W: Write> Writer<W> {
    /// A writer; `verbose` lists unreachable and non-Exchange targets in the text table too;
    /// `meta` goes into the JSON document.
    pub fn new(out: W, format: Format, verbose: bool, meta: serde_json::Value) -> Self {
        Writer {
            out,
            format,
            verbose,
            rows: vec![],
            header_done: false,
            hidden: 0,
            meta,
            since_flush: 0,
        }
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

const CSV_HEADER: [&str; 17] = [
    "target",
    "host",
    "ip",
    "port",
    "scheme",
    "state",
    "build",
    "build_source",
    "product",
    "vulnerable_cves",
    "mitigated_cves",
    "indeterminate_cves",
    "reason",
    "cert_subject",
    "cert_not_after",
    "cert_self_signed",
    "time",
];

fn csv_record(r: &Row) -> [String; 17] {
    let cert = r.certificate.as_ref();
    [
        r.target.clone(),
        r.host.clone(),
        r.ip.clone().unwrap_or_default(),
        r.port.to_string(),
        r.scheme.clone(),
        r.state.as_str().to_string(),
        r.build.clone().unwrap_or_default(),
        r.build_source.clone().unwrap_or_default(),
        r.product.clone().unwrap_or_default(),
        r.cves_in(State::Vulnerable).join(" "),
        r.cves_in(State::Mitigated).join(" "),
        r.cves_in(State::Indeterminate).join(" "),
        r.reason.clone(),
        cert.map(|c| c.subject.clone()).unwrap_or_default(),
        cert.map(|c| c.not_after.clone()).unwrap_or_default(),
        cert.map(|c| c.self_signed.to_string()).unwrap_or_default(),
        r.time.clone(),
    ]
}

impl<W: Write> RowSink for Writer<W> {
    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        match self.format {
            Format::Json => self.rows.push(row.clone()),
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, row)?;
                self.out.write_all(b"\n")?;
                // Flush often: a killed run loses at most a few rows, which --resume re-probes.
                self.since_flush += 1;
                if self.since_flush >= 16 {
                    self.since_flush = 0;
                    flush_quietly(&mut self.out)?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut self.out);
                if !self.header_done {
                    w.write_record(CSV_HEADER)?;
                    self.header_done = true;
                }
                w.write_record(csv_record(row))?;
                w.flush()?;
            }
            Format::Text => {
                let listed =
                    self.verbose || !matches!(row.state, State::Unreachable | State::NotExchange);
                if !listed {
                    self.hidden += 1;
                    return Ok(());
                }
                if !self.header_done {
                    writeln!(
                        self.out,
                        "{:<28} {:<14} {:<14} REASON",
                        "TARGET", "STATE", "BUILD"
                    )?;
                    self.header_done = true;
                }
                writeln!(
                    self.out,
                    "{:<28} {:<14} {:<14} {}",
                    row.target,
                    row.state.as_str(),
                    row.build.as_deref().unwrap_or("-"),
                    row.reason
                )?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                let doc = serde_json::json!({
                    "schema": PROBE_SCHEMA,
                    "meta": self.meta,
                    "summary": summary,
                    "rows": self.rows,
                });
                serde_json::to_writer_pretty(&mut self.out, &doc)?;
                self.out.write_all(b"\n")?;
            }
            Format::Text => {
                if self.hidden > 0 {
                    writeln!(
                        self.out,
                        "({} unreachable or non-Exchange targets not listed; -v lists them)",
                        self.hidden
                    )?;
                }
                writeln!(self.out)?;
                self.out.write_all(summary_text(summary).as_bytes())?;
            }
            Format::Jsonl | Format::Csv => {
                if self.format == Format::Csv && !self.header_done {
                    let mut w = csv::Writer::from_writer(&mut self.out);
                    w.write_record(CSV_HEADER)?;
                    w.flush()?;
                }
            }
        }
        flush_quietly(&mut self.out)
    }
}

/// The summary for people: by state, by version, by CVE, and what was left out.
pub fn summary_text(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} targets probed in {:.1} s ({:.0}/s)",
        s.rows,
        s.seconds,
        if s.seconds > 0.0 {
            s.rows as f64 / s.seconds
        } else {
            0.0
        }
    );
    let states: Vec<String> = State::ALL
        .iter()
        .filter(|st| s.count(**st) > 0)
        .map(|st| format!("{} {}", s.count(*st), st.as_str()))
        .collect();
    if !states.is_empty() {
        let _ = writeln!(o, "  by state:   {}", states.join(", "));
    }
    let mut left = vec![];
    for (n, what) in [
        (s.excluded, "excluded"),
        (s.out_of_scope, "outside the scope file"),
        (s.other_shards, "in other shards"),
        (s.resumed, "already in the resumed output"),
    ] {
        if n > 0 {
            left.push(format!("{n} {what}"));
        }
    }
    if !left.is_empty() {
        let _ = writeln!(o, "  not probed: {}", left.join(", "));
    }
    if !s.by_version.is_empty() {
        let mut v: Vec<(&String, &u64)> = s.by_version.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(o, "  by version:");
        for (name, n) in v.iter().take(20) {
            let _ = writeln!(o, "    {n:>6}  {name}");
        }
        if v.len() > 20 {
            let _ = writeln!(o, "    … and {} more versions", v.len() - 20);
        }
    }
    if !s.by_cve.is_empty() {
        let _ = writeln!(
            o,
            "  by CVE:          vulnerable  mitigated  indeterminate  patched"
        );
        for (cve, c) in &s.by_cve {
            let _ = writeln!(
                o,
                "    {cve:<16} {:>8} {:>10} {:>14} {:>8}",
                c.vulnerable, c.mitigated, c.indeterminate, c.patched
            );
        }
    }
    o
}
