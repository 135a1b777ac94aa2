//! Reading `.evtx` files through the `evtx` crate, with the rules' prefilter inside the parser's
//! worker threads.
//!
//! Why this shape: the parser renders chunks in parallel (rayon, a bounded window of chunks in
//! flight, results put back in order). Rendering is the cost; matching the few records that can
//! matter is cheap. So each record is rendered to JSON bytes on the worker, only its `System`
//! part is deserialised (channel, provider, event id — serde skips the rest without building it),
//! and only records some rule wants are built into a [`WinEvent`] and handed to the caller's
//! `on_event`, still on the worker. The caller gets back its own results and the statistics the
//! coverage ledger needs: records per channel with first and last time, and every chunk or record
//! the parser could not read (the rest of the file is read regardless).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::sync::Arc;

use evtx::{EvtxParser, ParserSettings};
use exhunt_model::{ChannelCoverage, Timestamp};
use serde::Deserialize;

use crate::event::WinEvent;
use crate::reader::ReadStats;
use exhunt_model::{Cause, Problem};

/// Decides from the System fields whether an event is worth building (channel, provider, event id).
pub type Wants = Arc<dyn Fn(&str, &str, Option<u32>) -> bool + Send + Sync>;

/// Most distinct parser errors written to the ledger per file; the rest are counted.
const MAX_ERRORS_LISTED: usize = 20;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "Event", borrow)]
    event: HeadEvent<'a>,
}

#[derive(Deserialize)]
struct HeadEvent<'a> {
    #[serde(rename = "System", borrow)]
    system: HeadSystem<'a>,
}

#[derive(Deserialize)]
struct HeadSystem<'a> {
    #[serde(rename = "Channel", borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(rename = "Provider", borrow, default)]
    provider: Option<HeadProvider<'a>>,
    #[serde(rename = "EventID", default)]
    event_id: Option<serde_json::Value>,
    #[serde(rename = "Computer", borrow, default)]
    computer: Option<Cow<'a, str>>,
    #[serde(rename = "TimeCreated", borrow, default)]
    time_created: Option<HeadTime<'a>>,
}

#[derive(Deserialize)]
struct HeadTime<'a> {
    #[serde(rename = "#attributes", borrow, default)]
    attributes: Option<HeadTimeAttrs<'a>>,
}

#[derive(Deserialize)]
struct HeadTimeAttrs<'a> {
    #[serde(rename = "SystemTime", borrow, default)]
    system_time: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HeadProvider<'a> {
    #[serde(rename = "#attributes", borrow, default)]
    attributes: Option<HeadProviderAttrs<'a>>,
}

#[derive(Deserialize)]
struct HeadProviderAttrs<'a> {
    #[serde(rename = "Name", borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// One record as it comes back from a parser worker.
struct Rendered<T> {
    time: Option<Timestamp>,
    channel: Box<str>,
    computer: Option<Box<str>>,
    out: Option<T>,
}

/// What reading one EVTX file gave.
pub struct EvtxRead<T> {
    /// Statistics for the coverage ledger (`records`, `first`, `last`, `problems`, `host`).
    pub stats: ReadStats,
    /// The caller's results, in record order.
    pub results: Vec<T>,
}

/// The record header's time, unless it is unset (some producers write zero: 1601-01-01).
fn to_time(t: &evtx::Timestamp) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
        .filter(|t| t.timestamp() > 315_532_800) // 1980-01-01
}

/// The error with its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Reads one EVTX stream. `bytes` is its size (for the statistics); `threads` 0 lets rayon decide.
/// `on_event` runs on the parser's worker threads for every event `wants` accepts.
pub fn read_evtx<R, T, F>(
    input: R,
    bytes: u64,
    threads: usize,
    wants: Wants,
    on_event: F,
) -> EvtxRead<T>
where
    R: Read + Seek + Send + 'static,
    T: Send + 'static,
    F: Fn(&WinEvent) -> Option<T> + Send + Sync + Clone + 'static,
{
    let mut stats = ReadStats {
        bytes,
        ..ReadStats::default()
    };
    let mut results = Vec::new();
    let settings = ParserSettings::new()
        .num_threads(threads)
        .validate_checksums(true);
    let mut parser = match EvtxParser::from_read_seek(input) {
        Ok(p) => p.with_configuration(settings),
        Err(e) => {
            stats.problems.push(Problem {
                path: String::new(),
                kind: None,
                cause: Cause::Unreadable,
                line: None,
                reason: format!("not a readable EVTX file: {}", error_chain(&e)),
                evidence_lost: true,
            });
            return EvtxRead { stats, results };
        }
    };
    // The header says how many chunks the log has; a copy that stops short was cut (an
    // interrupted copy, a full disk): the missing chunks are lost evidence. The parser itself
    // reads what is there without complaint.
    let header = parser.header();
    let block = u64::from(header.header_block_size).max(4096);
    let expected = block + u64::from(header.chunk_count) * 65536;
    if bytes > 0 && bytes < expected {
        let have = bytes.saturating_sub(block) / 65536;
        stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Truncated,
            line: None,
            reason: format!(
                "truncated: the header lists {} chunks ({expected} bytes), the file has {bytes} bytes ({have} whole chunks); the rest of the log is missing",
                header.chunk_count
            ),
            evidence_lost: true,
        });
    }
    let mut channels: BTreeMap<Box<str>, ChannelCoverage> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut error_count = 0u64;
    let iter = parser.serialized_records(move |rec| {
        let rec = rec?;
        let time = to_time(&rec.timestamp);
        let json = rec.into_json_bytes()?;
        let Ok(head) = serde_json::from_slice::<Head<'_>>(&json.data) else {
            return Ok(Rendered {
                time,
                channel: "".into(),
                computer: None,
                out: None,
            });
        };
        let sys = &head.event.system;
        // `TimeCreated` is when the event happened; the record header's time is when it was
        // written, and some producers leave it unset.
        let time = sys
            .time_created
            .as_ref()
            .and_then(|t| t.attributes.as_ref())
            .and_then(|a| a.system_time.as_deref())
            .and_then(crate::time::parse_iso)
            .or(time);
        let channel = sys.channel.as_deref().unwrap_or("");
        let provider = sys
            .provider
            .as_ref()
            .and_then(|p| p.attributes.as_ref())
            .and_then(|a| a.name.as_deref())
            .unwrap_or("");
        let event_id =
            crate::event::number(sys.event_id.as_ref()).and_then(|n| u32::try_from(n).ok());
        let out = if wants(channel, provider, event_id) {
            serde_json::from_slice::<serde_json::Value>(&json.data)
                .ok()
                .and_then(|v| WinEvent::from_evtx_json(&v))
                .map(|mut ev| {
                    ev.time = time;
                    ev.record_id = json.event_record_id;
                    ev
                })
                .and_then(|ev| on_event(&ev))
        } else {
            None
        };
        Ok(Rendered {
            time,
            channel: channel.into(),
            computer: sys.computer.as_deref().map(Into::into),
            out,
        })
    });
    for item in iter {
        match item {
            Ok(r) => {
                stats.records += 1;
                if let Some(t) = r.time {
                    stats.first = Some(stats.first.map_or(t, |f| f.min(t)));
                    stats.last = Some(stats.last.map_or(t, |l| l.max(t)));
                }
                if stats.host.is_none()
                    && let Some(c) = &r.computer
                    && !c.is_empty()
                {
                    stats.host = Some(c.to_string());
                }
                let c = channels
                    .entry(r.channel.clone())
                    .or_insert_with(|| ChannelCoverage {
                        channel: r.channel.to_string(),
                        files: 1,
                        records: 0,
                        first: None,
                        last: None,
                        host: None,
                    });
                c.records += 1;
                if let Some(t) = r.time {
                    c.first = Some(c.first.map_or(t, |f| f.min(t)));
                    c.last = Some(c.last.map_or(t, |l| l.max(t)));
                }
                if let Some(o) = r.out {
                    results.push(o);
                }
            }
            Err(e) => {
                error_count += 1;
                let m = error_chain(&e);
                if errors.len() < MAX_ERRORS_LISTED && !errors.contains(&m) {
                    errors.push(m);
                }
            }
        }
    }
    for m in &errors {
        stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Unreadable,
            line: None,
            reason: format!("unreadable part skipped, the rest was read: {m}"),
            evidence_lost: true,
        });
    }
    if error_count > errors.len() as u64 {
        stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Unreadable,
            line: None,
            reason: format!(
                "{error_count} unreadable chunks or records in all ({} listed)",
                errors.len()
            ),
            evidence_lost: true,
        });
    }
    if stats.records == 0 && error_count == 0 {
        stats.problems.push(Problem {
            path: String::new(),
            kind: None,
            cause: Cause::Empty,
            line: None,
            reason: "EVTX file with no records (empty or never written)".into(),
            evidence_lost: false,
        });
    }
    stats.channels = channels.into_values().collect();
    EvtxRead { stats, results }
}
