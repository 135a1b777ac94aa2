//! Probe rows to `POST /api/v1/observations/probe`, in bounded batches sent while the probe
//! runs: a scope of a million targets never holds more than a few batches in memory, and the
//! rows of a run that is killed half-way are on the server up to the last batch.
//!
//! The batches go out from a thread of their own (the probe's runtime keeps probing); the
//! channel between them is bounded, so a slow server slows the probe rather than filling memory.
//! A batch the server finds too large (413, e.g. a proxy's 1 MiB default) is split in halves
//! and sent again.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde_json::Value;

use super::Uploader;

/// Rows per batch at most.
const MAX_ROWS: usize = 2_000;
/// Bytes per batch at most: under exhunt serve's smallest `--max-body-mib` (1) and nginx's
/// default `client_max_body_size` (1 MiB).
const MAX_BYTES: usize = 1_000_000;

/// What the server did with the rows, summed over the batches.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// Rows sent in batches the server took.
    pub(crate) sent: u64,
    /// Batches the server took.
    pub(crate) batches: u64,
    /// Stored under the organisation.
    pub(crate) assigned: u64,
    /// Stored in the unassigned queue (operator tokens).
    pub(crate) unassigned: u64,
    /// Already stored.
    pub(crate) duplicates: u64,
    /// Not stored: outside the organisation's scope.
    pub(crate) outside_scope: u64,
    /// Not stored: rows that say nothing about a server (invalid, skipped).
    pub(crate) ignored: u64,
    /// Rows not sent or not taken because of `failure`.
    pub(crate) lost: u64,
    /// The first failure; later batches are not tried.
    pub(crate) failure: Option<String>,
}

/// Collects JSONL rows into batches and uploads them.
pub(crate) struct RowUploader {
    tx: Option<SyncSender<(u64, Vec<u8>)>>,
    worker: Option<JoinHandle<Totals>>,
    buf: Vec<u8>,
    rows: u64,
    url: String,
}

impl RowUploader {
    /// Starts the sending thread.
    pub(crate) fn start(up: Uploader) -> RowUploader {
        let url = up.url();
        let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(2);
        let worker = std::thread::spawn(move || {
            let mut t = Totals::default();
            for (rows, body) in rx {
                if t.failure.is_some() {
                    t.lost += rows;
                    continue;
                }
                send_batch(&up, rows, &body, &mut t);
            }
            t
        });
        RowUploader {
            tx: Some(tx),
            worker: Some(worker),
            buf: Vec::new(),
            rows: 0,
            url,
        }
    }

    /// Adds one row (a JSON object on one line, without the newline).
    pub(crate) fn push(&mut self, line: &[u8]) {
        if !self.buf.is_empty() && self.buf.len() + line.len() + 1 > MAX_BYTES {
            self.flush();
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.rows += 1;
        if self.rows as usize >= MAX_ROWS || self.buf.len() >= MAX_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows == 0 {
            return;
        }
        let body = std::mem::take(&mut self.buf);
        let rows = std::mem::replace(&mut self.rows, 0);
        if let Some(tx) = &self.tx {
            // The worker only ends when the channel closes: a send cannot fail before.
            let _ = tx.send((rows, body));
        }
    }

    /// Sends what is left, waits for the last answer, and says on stderr what the server did
    /// (the outcome without `quiet`, a failure always). True when every batch was taken.
    pub(crate) fn finish(mut self, quiet: bool) -> bool {
        self.flush();
        drop(self.tx.take());
        let t = match self.worker.take().map(JoinHandle::join) {
            Some(Ok(t)) => t,
            _ => Totals {
                failure: Some("the upload thread stopped".into()),
                ..Totals::default()
            },
        };
        report(&t, &self.url, quiet);
        t.failure.is_none()
    }
}

fn send_batch(up: &Uploader, rows: u64, body: &[u8], t: &mut Totals) {
    match up.send("/api/v1/observations/probe", "application/x-ndjson", body) {
        Ok(v) => {
            let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            t.sent += rows;
            t.batches += 1;
            t.assigned += n("assigned");
            t.unassigned += n("unassigned");
            t.duplicates += n("duplicates");
            t.outside_scope += n("outside_scope");
            t.ignored += n("ignored");
        }
        Err(e) if rows > 1 && e.starts_with("the server answered 413") => {
            // Too large for this server or a proxy before it: halves, at a line boundary.
            let lines: Vec<&[u8]> = body
                .split_inclusive(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let mid = lines.len() / 2;
            for half in [&lines[..mid], &lines[mid..]] {
                if t.failure.is_some() {
                    t.lost += half.len() as u64;
                    continue;
                }
                send_batch(up, half.len() as u64, &half.concat(), t);
            }
        }
        Err(e) => {
            t.lost += rows;
            t.failure = Some(e);
        }
    }
}

fn report(t: &Totals, url: &str, quiet: bool) {
    if !quiet || t.failure.is_some() {
        eprintln!(
            "exhunt: upload to {url}: {} rows in {} batches taken: {} stored, {} already stored, {} ignored (invalid or skipped targets){}{}",
            t.sent,
            t.batches,
            t.assigned + t.unassigned,
            t.duplicates,
            t.ignored,
            if t.unassigned > 0 {
                format!(
                    ", {} of them in the unassigned queue (no organisation's scope holds them)",
                    t.unassigned
                )
            } else {
                String::new()
            },
            if t.outside_scope > 0 {
                format!(
                    "; {} NOT stored: outside your organisation's scope on the server (its operator adds the ranges or names)",
                    t.outside_scope
                )
            } else {
                String::new()
            },
        );
    }
    if let Some(f) = &t.failure {
        eprintln!(
            "exhunt: error: upload of probe rows to {url} failed: {}; {} rows were not stored. The local output is complete; the exit code has 4 added. Rows written with --format jsonl can be sent again later with --resume FILE --upload (duplicates are stored once)",
            exhunt_report::safe::terminal(f),
            t.lost
        );
    }
}
