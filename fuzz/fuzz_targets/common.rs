// Shared by the log targets: decode like a scan does, read with a prefilter, touch every field.
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

pub fn read(format: LogFormat, patterns: &[&str], data: &[u8]) {
    // Small limits, so that the long-line and buffer-boundary paths are reached with small inputs.
    let limits = Limits {
        max_line_bytes: 256,
        ..Limits::default()
    };
    let reader = LogReader::new(format, patterns, limits);
    let enc = sniff(&data[..data.len().min(8192)]);
    let mut input = utf8_reader(Box::new(data), enc);
    let _ = reader.read(&mut input, &mut Touch);
}
