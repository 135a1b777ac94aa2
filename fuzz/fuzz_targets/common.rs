// Shared by the log targets: decode like a scan does, read with a prefilter, touch every field.
// Readers (their regex) and the read buffer are built once per process, as in a scan.
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use exhunt_sources::decode::{sniff, utf8_reader};
use exhunt_sources::{Limits, LogFormat, LogReader, Record, Schema, SchemaCheck, Visit};

struct Touch;

impl Visit for Touch {
    fn schema(&mut self, s: &Schema) -> SchemaCheck {
        let _ = s.names().len();
        SchemaCheck::Usable
    }
    fn record(&mut self, r: &Record<'_>) {
        let _ = r.timestamp();
        if let Some(s) = r.schema() {
            for n in s.names() {
                let _ = r.get(n);
            }
        }
        let _ = r.len();
    }
}

fn reader(format: LogFormat, patterns: &[&str]) -> LogReader {
    static READERS: OnceLock<Mutex<HashMap<String, LogReader>>> = OnceLock::new();
    let key = format!("{format:?}{patterns:?}");
    let mut map = READERS.get_or_init(Default::default).lock().unwrap();
    map.entry(key)
        .or_insert_with(|| {
            // Small line limit, so the long-line and buffer-boundary paths are reached.
            let limits = Limits {
                max_line_bytes: 256,
                ..Limits::default()
            };
            LogReader::new(format, patterns, limits)
        })
        .clone()
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub fn read(format: LogFormat, patterns: &[&str], data: &[u8]) {
    let reader = reader(format, patterns);
    let enc = sniff(&data[..data.len().min(8192)]);
    let mut input = utf8_reader(Box::new(data), enc);
    SCRATCH.with(|s| {
        let _ = reader.read_with(&mut input, &mut Touch, &mut s.borrow_mut());
    });
}
