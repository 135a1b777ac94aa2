//! Windows events exported as JSON: what is left when the `.evtx` files are gone and the events
//! went to a SIEM long ago.
//!
//! Three shapes are read, recognised per event, not per file:
//! - the JSON of the evtx crate (`evtx_dump -o json[l]`): `{"Event": {"System": …, "EventData": …}}`,
//!   one per line or pretty-printed one after another (with or without `Record N` lines between);
//! - Winlogbeat / Elastic Common Schema documents: `winlog.channel`, `winlog.event_id`,
//!   `winlog.provider_name`, `winlog.event_data.*`, `@timestamp`, `host.name`;
//! - flattened events (NXLog, most public attack datasets): `Channel`, `EventID`,
//!   `SourceName`/`ProviderName`, `Hostname`/`Computer`, `TimeCreated`/`EventTime`/`@timestamp`,
//!   `Message`, and the event data at the top level.
//!
//! Why a scanner of our own instead of a JSON stream parser: exports come as JSON Lines, as one
//! JSON array (sometimes a 200 MB single line), or as concatenated pretty-printed objects, and
//! half-written or mixed with other lines. The scanner walks the bytes once, tracking strings and
//! nesting, and cuts out one event object at a time (inside a top-level array or not), so memory is
//! one event whatever the file; each object is then parsed on its own, and anything between objects
//! that is not JSON is reported with its line and skipped.

use std::collections::BTreeMap;
use std::io::Read;

use exhunt_model::ChannelCoverage;
use serde_json::{Map, Value};

use crate::event::{WinEvent, number, text};
use crate::reader::ReadStats;
use exhunt_model::{Cause, Problem};

/// Largest single event kept; a larger object is skipped and reported.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Problems of one kind listed per file; the rest are counted.
const MAX_LISTED: usize = 10;

/// Whether a decoded file head looks like Windows events in JSON.
pub fn looks_like_export(head: &str) -> bool {
    let t = head.trim_start_matches('\u{feff}').trim_start();
    let t = t
        .strip_prefix("Record ")
        .map(|r| {
            r.trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start()
        })
        .unwrap_or(t);
    if !(t.starts_with('{') || t.starts_with('[')) {
        return false;
    }
    [
        "\"EventID\"",
        "\"EventId\"",
        "\"event_id\"",
        "\"winlog\"",
        "\"Channel\"",
        "\"channel\"",
    ]
    .iter()
    .any(|k| t.contains(k))
}

/// What reading one export gave.
pub struct ExportRead<T> {
    /// Statistics for the coverage ledger; `channels` carry the host of each channel.
    pub stats: ReadStats,
    /// The caller's results, in file order.
    pub results: Vec<T>,
    /// Events per host (`Computer`, `host.name`, `Hostname`).
    pub hosts: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Tally {
    count: u64,
    listed: Vec<String>,
    lost: bool,
}

impl Tally {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(what);
        }
    }
}

/// Builds a [`WinEvent`] from one exported JSON object of any of the three shapes. `Err` says
/// why the object is not a Windows event.
pub fn event_from_json(v: &Value) -> Result<(WinEvent, Vec<String>), &'static str> {
    let Value::Object(obj) = v else {
        return Err("not a JSON object");
    };
    if obj.get("Event").is_some_and(|e| e.get("System").is_some()) {
        return WinEvent::from_evtx_json(v)
            .map(|e| (e, Vec::new()))
            .ok_or("an `Event` without `System`");
    }
    if let Some(Value::Object(w)) = obj.get("winlog") {
        return Ok(from_ecs(obj, w));
    }
    if ["EventID", "EventId", "event_id", "Channel", "channel"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Ok(from_flat(obj));
    }
    Err("no Channel or EventID: not a Windows event")
}

fn level_of(v: Option<&Value>) -> Option<u8> {
    if let Some(n) = number(v).and_then(|n| u8::try_from(n).ok()) {
        return Some(n);
    }
    let s = text(v)?.to_ascii_lowercase();
    Some(match s.as_str() {
        "critical" => 1,
        "error" => 2,
        "warning" | "warn" => 3,
        "information" | "info" | "informational" => 4,
        "verbose" => 5,
        _ => return None,
    })
}

/// EventID from a number, a numeric string or `{"#text": …}`; any other type is reported.
fn event_id_of(v: Option<&Value>, notes: &mut Vec<String>) -> Option<u32> {
    let v = v?;
    match number(Some(v)).and_then(|n| u32::try_from(n).ok()) {
        Some(id) => Some(id),
        None => {
            let ty = match v {
                Value::Object(_) => "an object",
                Value::Array(_) => "an array",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                _ => "not a whole number",
            };
            notes.push(format!(
                "EventID is {ty}: the event is checked without an event id"
            ));
            None
        }
    }
}

fn from_ecs(obj: &Map<String, Value>, w: &Map<String, Value>) -> (WinEvent, Vec<String>) {
    let mut notes = Vec::new();
    let host = obj.get("host");
    let mut ev = WinEvent {
        channel: text(w.get("channel")).unwrap_or_default(),
        provider: text(w.get("provider_name")).unwrap_or_default(),
        event_id: event_id_of(
            w.get("event_id")
                .or_else(|| obj.get("event").and_then(|e| e.get("code"))),
            &mut notes,
        ),
        level: level_of(obj.get("log").and_then(|l| l.get("level"))),
        computer: text(w.get("computer_name"))
            .or_else(|| text(host.and_then(|h| h.get("name"))))
            .or_else(|| text(host.and_then(|h| h.get("hostname"))))
            .unwrap_or_default(),
        time: text(obj.get("@timestamp")).and_then(|t| crate::time::parse_iso(&t)),
        record_id: number(w.get("record_id"))
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        message: text(obj.get("message")),
        ..WinEvent::default()
    };
    for key in ["event_data", "user_data"] {
        if let Some(Value::Object(d)) = w.get(key) {
            // Winlogbeat names unnamed <Data> elements param1, param2, …: keep them as the
            // unnamed list, in order.
            let mut params: Vec<(u32, String)> = Vec::new();
            for (k, v) in d {
                match k.strip_prefix("param").and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) => {
                        if let Some(t) = text(Some(v)) {
                            params.push((n, t));
                        }
                    }
                    None => push_data(&mut ev, k, v),
                }
            }
            params.sort_by_key(|p| p.0);
            ev.unnamed.extend(params.into_iter().map(|p| p.1));
        }
    }
    (ev, notes)
}

/// Keys of flattened exports that describe the event rather than being its data.
const FLAT_SYSTEM: &[&str] = &[
    "Channel",
    "channel",
    "EventID",
    "EventId",
    "event_id",
    "SourceName",
    "ProviderName",
    "Provider_Name",
    "Provider",
    "Hostname",
    "Computer",
    "computer_name",
    "EventTime",
    "TimeCreated",
    "@timestamp",
    "TimeGenerated",
    "EventReceivedTime",
    "timestamp",
    "Message",
    "message",
    "RecordNumber",
    "EventRecordID",
    "Level",
    "Severity",
    "SeverityValue",
    "EventType",
    "Keywords",
    "Task",
    "Opcode",
    "SourceModuleName",
    "SourceModuleType",
    "@version",
    "tags",
];

fn from_flat(obj: &Map<String, Value>) -> (WinEvent, Vec<String>) {
    let mut notes = Vec::new();
    let first = |keys: &[&str]| keys.iter().find_map(|k| obj.get(*k));
    let mut ev = WinEvent {
        channel: text(first(&["Channel", "channel"])).unwrap_or_default(),
        provider: text(first(&[
            "SourceName",
            "ProviderName",
            "Provider_Name",
            "Provider",
        ]))
        .unwrap_or_default(),
        event_id: event_id_of(first(&["EventID", "EventId", "event_id"]), &mut notes),
        level: level_of(first(&["Level"])).or_else(|| level_of(first(&["Severity"]))),
        computer: text(first(&["Hostname", "Computer", "computer_name"])).unwrap_or_default(),
        time: first(&[
            "TimeCreated",
            "EventTime",
            "@timestamp",
            "TimeGenerated",
            "timestamp",
        ])
        .and_then(|t| text(Some(t)))
        .and_then(|t| crate::time::parse_iso(&t)),
        record_id: number(first(&["EventRecordID", "RecordNumber"]))
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        message: text(first(&["Message", "message"])),
        ..WinEvent::default()
    };
    for (k, v) in obj {
        if FLAT_SYSTEM.contains(&k.as_str()) {
            continue;
        }
        if k == "EventData" || k == "UserData" {
            if let Value::Object(m) = v {
                for (k2, v2) in m {
                    push_data(&mut ev, k2, v2);
                }
            }
            continue;
        }
        push_data(&mut ev, k, v);
    }
    (ev, notes)
}

fn push_data(ev: &mut WinEvent, k: &str, v: &Value) {
    if k == "Data" {
        match v {
            Value::Array(a) => ev.unnamed.extend(a.iter().filter_map(|x| text(Some(x)))),
            other => {
                if let Some(t) = text(Some(other)) {
                    ev.unnamed.push(t);
                }
            }
        }
        return;
    }
    let val = match v {
        Value::String(s) => crate::event::Val::Str(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => crate::event::Val::Int(i),
            None => crate::event::Val::Str(n.to_string()),
        },
        Value::Bool(b) => crate::event::Val::Str(b.to_string()),
        Value::Array(a) => {
            crate::event::Val::List(a.iter().filter_map(|x| text(Some(x))).collect())
        }
        Value::Object(m) => match text(m.get("#text")) {
            Some(t) => crate::event::Val::Str(t),
            None => return,
        },
        Value::Null => return,
    };
    ev.data.push((k.to_string(), val));
}

/// Scanner state between blocks.
#[derive(Default)]
struct Scan {
    line: u64,
    offset: u64,
    depth: u32,
    in_string: bool,
    escape: bool,
    /// Inside a top-level array.
    in_array: bool,
    /// The current object's bytes (empty when skipping an oversized one).
    buf: Vec<u8>,
    oversized: bool,
    start_line: u64,
    start_offset: u64,
    /// Skipping a line that is not JSON.
    junk: bool,
    junk_line: u64,
}

/// Reads one export stream (already decompressed and decoded to UTF-8). `on_event` gets each
/// event that `wants` accepts, with the line and byte offset where it starts.
pub fn read_export<T>(
    input: &mut dyn Read,
    wants: &dyn Fn(&str, Option<u32>) -> bool,
    on_event: &mut dyn FnMut(&WinEvent, u64, u64) -> Option<T>,
) -> ExportRead<T> {
    let mut out = ExportRead {
        stats: ReadStats::default(),
        results: Vec::new(),
        hosts: BTreeMap::new(),
    };
    let mut channels: BTreeMap<(String, String), ChannelCoverage> = BTreeMap::new();
    let mut junk = Tally::default();
    let mut bad_json = Tally {
        lost: true,
        ..Tally::default()
    };
    let mut not_events = Tally::default();
    let mut odd_types = Tally::default();
    let mut untimed = Tally::default();
    let mut oversized = Tally {
        lost: true,
        ..Tally::default()
    };
    let mut s = Scan {
        line: 1,
        ..Scan::default()
    };
    let mut block = vec![0u8; 1 << 20];
    let mut handle = |s: &mut Scan, out: &mut ExportRead<T>| {
        let at = s.start_line;
        if s.oversized {
            oversized.add(format!(
                "line {at}: an event of more than {MAX_EVENT_BYTES} bytes, skipped"
            ));
            s.oversized = false;
            s.buf.clear();
            return;
        }
        let parsed = serde_json::from_slice::<Value>(&s.buf);
        s.buf.clear();
        let v = match parsed {
            Ok(v) => v,
            Err(e) => {
                bad_json.add(format!("line {at}: not valid JSON ({e})"));
                return;
            }
        };
        let (ev, notes) = match event_from_json(&v) {
            Ok(x) => x,
            Err(why) => {
                not_events.add(format!("line {at}: {why}"));
                return;
            }
        };
        for n in notes {
            odd_types.add(format!("line {at}: {n}"));
        }
        out.stats.records += 1;
        match ev.time {
            Some(t) => {
                out.stats.first = Some(out.stats.first.map_or(t, |f| f.min(t)));
                out.stats.last = Some(out.stats.last.map_or(t, |l| l.max(t)));
            }
            None => untimed.add(format!("line {at}")),
        }
        *out.hosts.entry(ev.computer.clone()).or_default() += 1;
        let c = channels
            .entry((ev.computer.clone(), ev.channel.clone()))
            .or_insert_with(|| ChannelCoverage {
                channel: ev.channel.clone(),
                files: 1,
                records: 0,
                first: None,
                last: None,
                host: Some(ev.computer.clone()).filter(|h| !h.is_empty()),
            });
        c.records += 1;
        if let Some(t) = ev.time {
            c.first = Some(c.first.map_or(t, |f| f.min(t)));
            c.last = Some(c.last.map_or(t, |l| l.max(t)));
        }
        if wants(&ev.channel, ev.event_id)
            && let Some(r) = on_event(&ev, at, s.start_offset)
        {
            out.results.push(r);
        }
    };
    loop {
        let n = match input.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.stats.problems.push(Problem {
                    path: String::new(),
                    kind: None,
                    cause: Cause::Unreadable,
                    line: Some(s.line),
                    reason: format!("read stopped: {e}"),
                    evidence_lost: true,
                });
                break;
            }
        };
        out.stats.bytes += n as u64;
        for &b in &block[..n] {
            let here = s.offset;
            s.offset += 1;
            if s.depth > 0 {
                if !s.oversized {
                    if s.buf.len() >= MAX_EVENT_BYTES {
                        s.oversized = true;
                        s.buf = Vec::new();
                    } else {
                        s.buf.push(b);
                    }
                }
                if b == b'\n' {
                    s.line += 1;
                }
                if s.in_string {
                    if s.escape {
                        s.escape = false;
                    } else if b == b'\\' {
                        s.escape = true;
                    } else if b == b'"' {
                        s.in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => s.in_string = true,
                    b'{' | b'[' => s.depth += 1,
                    b'}' | b']' => {
                        s.depth -= 1;
                        if s.depth == 0 {
                            handle(&mut s, &mut out);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if s.junk {
                if b == b'\n' {
                    s.junk = false;
                    s.line += 1;
                }
                continue;
            }
            match b {
                b'\n' => s.line += 1,
                b' ' | b'\t' | b'\r' | b',' => {}
                0xEF | 0xBB | 0xBF if here < 3 => {}
                b'[' if !s.in_array => s.in_array = true,
                b']' if s.in_array => s.in_array = false,
                b'{' => {
                    s.depth = 1;
                    s.start_line = s.line;
                    s.start_offset = here;
                    s.buf.clear();
                    s.buf.push(b);
                }
                _ => {
                    // `evtx_dump -o json` writes `Record N` before each event: expected, not junk.
                    s.junk = true;
                    s.junk_line = s.line;
                    if b != b'R' {
                        junk.add(format!("line {}: not JSON, skipped", s.line));
                    }
                }
            }
        }
    }
    if s.depth > 0 {
        out.stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Truncated,
            line: Some(s.start_line),
            reason: format!(
                "truncated: the event starting at line {} is cut off at the end of the file",
                s.start_line
            ),
            evidence_lost: true,
        });
    } else if s.in_array {
        out.stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Truncated,
            line: Some(s.line),
            reason: "truncated: the JSON array is not closed (the file was cut); the events before the cut were read".into(),
            evidence_lost: true,
        });
    }
    for (t, what) in [
        (junk, "lines that are not JSON"),
        (bad_json, "objects that are not valid JSON"),
        (not_events, "JSON objects that are not Windows events"),
        (odd_types, "events with fields of an unexpected type"),
        (
            untimed,
            "events without a time (kept, but outside any time span)",
        ),
        (oversized, "oversized events"),
    ] {
        if t.count == 0 {
            continue;
        }
        for l in &t.listed {
            out.stats.problems.push(Problem {
                path: String::new(),
                kind: None,
                cause: Cause::Format,
                line: l
                    .strip_prefix("line ")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok()),
                reason: l.clone(),
                evidence_lost: t.lost,
            });
        }
        if t.count > t.listed.len() as u64 {
            out.stats.problems.push(Problem {
                path: String::new(),
                kind: None,
                cause: Cause::Format,
                line: None,
                reason: format!("{} {what} in all ({} listed)", t.count, t.listed.len()),
                evidence_lost: t.lost,
            });
        }
    }
    if out.stats.records == 0 && out.stats.problems.is_empty() {
        out.stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Empty,
            line: None,
            reason: "no events in this export".into(),
            evidence_lost: false,
        });
    }
    out.stats.host = out
        .hosts
        .iter()
        .filter(|(h, _)| !h.is_empty())
        .max_by_key(|(_, n)| **n)
        .map(|(h, _)| h.clone());
    out.stats.channels = channels.into_values().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> ExportRead<(String, u64)> {
        read_export(&mut text.as_bytes(), &|_, _| true, &mut |ev, line, _| {
            Some((format!("{}/{:?}", ev.channel, ev.event_id), line))
        })
    }

    #[test]
    fn three_shapes_one_model() {
        let flat = r#"{"EventTime":"2021-03-03 04:22:11","Hostname":"EX01","EventID":4688,"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","NewProcessName":"C:\\Windows\\System32\\cmd.exe","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}"#;
        let ecs = r#"{"@timestamp":"2021-03-03T04:22:11.000Z","host":{"name":"EX01"},"winlog":{"channel":"Security","event_id":"4688","provider_name":"Microsoft-Windows-Security-Auditing","record_id":12,"event_data":{"NewProcessName":"C:\\Windows\\System32\\cmd.exe","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}}}"#;
        let dump = r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},"EventID":4688,"TimeCreated":{"#attributes":{"SystemTime":"2021-03-03T04:22:11.000Z"}},"EventRecordID":12,"Channel":"Security","Computer":"EX01"},"EventData":{"NewProcessName":"C:\\Windows\\System32\\cmd.exe","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}}}"##;
        let mut evs = Vec::new();
        for t in [flat, ecs, dump] {
            let v: Value = serde_json::from_str(t).unwrap();
            let (ev, notes) = event_from_json(&v).unwrap();
            assert!(notes.is_empty());
            evs.push(ev);
        }
        for ev in &evs {
            assert_eq!(ev.channel, "Security");
            assert_eq!(ev.event_id, Some(4688));
            assert_eq!(ev.computer, "EX01");
            assert_eq!(ev.time.unwrap().to_rfc3339(), "2021-03-03T04:22:11+00:00");
            assert!(
                ev.get("Image")
                    .unwrap()
                    .as_text()
                    .unwrap()
                    .ends_with("cmd.exe")
            );
        }
    }

    #[test]
    fn jsonl_array_and_concatenated_objects() {
        let one = r#"{"Channel":"System","EventID":104,"Hostname":"A","EventTime":"2021-03-03 04:22:11"}"#;
        let jsonl = format!("{one}\n{one}\n");
        assert_eq!(read(&jsonl).results.len(), 2);
        let array = format!("[{one},{one},\n{one}]");
        let r = read(&array);
        assert_eq!(r.results.len(), 3);
        assert!(r.stats.problems.is_empty(), "{:?}", r.stats.problems);
        let pretty = format!(
            "Record 1\n{}\nRecord 2\n{}\n",
            one.replace(',', ",\n  "),
            one
        );
        let r = read(&pretty);
        assert_eq!(r.results.len(), 2);
        assert!(r.stats.problems.is_empty(), "{:?}", r.stats.problems);
        assert_eq!(r.results[1].1, 7, "line of the second event");
    }

    #[test]
    fn mixed_truncated_and_odd_input_is_named_and_the_rest_read() {
        let good = r#"{"Channel":"System","EventID":104,"Hostname":"A","EventTime":"2021-03-03 04:22:11"}"#;
        let text = format!(
            "{good}\nthis is a syslog line\n{{\"Channel\":\"System\",\"EventID\":{{\"x\":1}}}}\n{{\"Channel\":\"System\",\"EventID\":\"104\"}}\n{{\"foo\":1}}\n{{\"Channel\": tru}}\n[{good},{good},{{\"Channel\":\"Sys"
        );
        let r = read(&text);
        assert_eq!(r.results.len(), 5, "{:?}", r.stats.problems);
        let reasons: Vec<&str> = r.stats.problems.iter().map(|p| p.reason.as_str()).collect();
        let has = |s: &str| reasons.iter().any(|r| r.contains(s));
        assert!(has("line 2: not JSON"), "{reasons:?}");
        assert!(has("line 3: EventID is an object"), "{reasons:?}");
        assert!(has("line 4"), "untimed event named: {reasons:?}");
        assert!(has("line 5: no Channel or EventID"), "{reasons:?}");
        assert!(has("line 6: not valid JSON"), "{reasons:?}");
        assert!(
            has("truncated: the event starting at line 7"),
            "{reasons:?}"
        );
        assert!(r.stats.problems.iter().any(|p| p.evidence_lost));
    }

    #[test]
    fn one_huge_line_array_streams() {
        let one = r#"{"Channel":"Application","EventID":1,"Hostname":"A","EventTime":"2021-03-03 04:22:11","Data":"x"}"#;
        let mut s = String::from("[");
        for i in 0..20_000 {
            if i > 0 {
                s.push(',');
            }
            s.push_str(one);
        }
        s.push(']');
        let r = read(&s);
        assert_eq!(r.stats.records, 20_000);
        assert!(r.stats.problems.is_empty());
    }

    #[test]
    fn winlogbeat_params_become_unnamed_data() {
        let v: Value = serde_json::from_str(r#"{"@timestamp":"2021-03-03T04:25:00Z","winlog":{"channel":"MSExchange Management","event_id":1,"provider_name":"MSExchange CmdletLogs","computer_name":"EX01","event_data":{"param2":"-ExternalUrl 'x'","param1":"Set-OabVirtualDirectory"}}}"#).unwrap();
        let (ev, _) = event_from_json(&v).unwrap();
        assert_eq!(
            ev.unnamed,
            vec!["Set-OabVirtualDirectory", "-ExternalUrl 'x'"]
        );
    }

    #[test]
    fn recognition() {
        assert!(looks_like_export("{\"EventID\": 1}"));
        assert!(looks_like_export("\u{feff}[{\"winlog\":{}}]"));
        assert!(looks_like_export(
            "Record 1\n{\n  \"Event\": {\"System\": {\"Channel\": \"x\"}}}"
        ));
        assert!(!looks_like_export("{\"name\": \"package.json\"}"));
        assert!(!looks_like_export("#Fields: date time"));
    }
}
