//! The streaming log reader: blocks of bytes, a literal prefilter, and fields only for candidate
//! lines.
//!
//! This is the hot loop of a scan. It reads a file in blocks of [`BLOCK`] bytes, searches each
//! block with one multi-literal matcher built from the literals of every check that wants this
//! kind of log (plus `\n#`, so directives are never missed), and only for a hit finds the line
//! around it, splits it into fields and hands it to the checks. Lines nobody wants cost one pass
//! of the matcher and one of the newline counter, which is what `rg -c` pays too.
//!
//! The matcher ([`BlockFilter`]) searches a lower-cased copy of the block for anchor literals of
//! the patterns with SIMD (Teddy), then matches the patterns on the lines the anchors point at.
//! The `regex` crate over the whole block (what ripgrep does with `-i -f`) ran at the lazy DFA's
//! speed: case variants and one pattern without a literal prefix turned its own prefilter off.
//!
//! Memory is bounded: one block plus at most one line of [`Limits::max_line_bytes`], whatever
//! the size of the file. A longer line is skipped and reported, never buffered.

use std::io::{self, Read};

use crate::inventory::io_reason;
use crate::limits::Limits;
use crate::prefilter::BlockFilter;
use crate::record::{LogFormat, Record, Schema};
use crate::time::parse_iso;
use chrono::{DateTime, NaiveDate, Utc};
use exhunt_model::{Cause, Problem};

/// Size of a read block.
pub const BLOCK: usize = 1 << 20;

/// What reading one file gave, besides the records handed to the visitor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Bytes read (decoded).
    pub bytes: u64,
    /// Data lines (directives not counted).
    pub records: u64,
    /// Time of the first data line.
    pub first: Option<DateTime<Utc>>,
    /// Time of the last data line.
    pub last: Option<DateTime<Utc>>,
    /// Problems met.
    pub problems: Vec<Problem>,
    /// Exchange builds from `#Version:` directives, with the `#Date:` next to them.
    pub versions: Vec<(String, Option<DateTime<Utc>>)>,
    /// `#Log-type:` value, if any.
    pub log_type: Option<String>,
    /// The server that wrote the log, from the first record (`ServerHostName`, `ServerName`,
    /// `s-computername`).
    pub host: Option<String>,
    /// The `Protocol` column of the first record (HttpProxy logs: `Ecp`, `Owa`, `RpcHttp`…):
    /// which protocol's requests the file holds, whatever folder it was copied into.
    pub protocol: Option<String>,
    /// Event log channels read (EVTX), with their time span.
    pub channels: Vec<exhunt_model::ChannelCoverage>,
}

impl ReadStats {
    /// Whether the file was read with no problem that may lose evidence.
    pub fn complete(&self) -> bool {
        !self.problems.iter().any(|p| p.evidence_lost)
    }
}

/// The checks' answer to a field layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaCheck {
    /// Every field the checks need is there.
    Usable,
    /// Some checks cannot run on this layout (the reason names them); records are still read.
    Partial(String),
    /// No check can run on this layout; its records are not handed over.
    Unusable(String),
}

/// What the reader calls back into: the checks' side of the seam.
pub trait Visit {
    /// A new field layout starts (`#Fields:` or a bare header). Anything but `Usable` is recorded
    /// as a problem that may lose evidence.
    fn schema(&mut self, _schema: &Schema) -> SchemaCheck {
        SchemaCheck::Usable
    }
    /// A candidate record: a line that contains at least one of the prefilter literals.
    fn record(&mut self, record: &Record<'_>);
}

/// A reader for one log format with one prefilter; built once per scan and shared by threads.
#[derive(Debug, Clone)]
pub struct LogReader {
    format: LogFormat,
    filter: BlockFilter,
    every_line: bool,
    limits: Limits,
}

impl LogReader {
    /// A reader that hands over lines matching any of `patterns`: regular-expression fragments,
    /// matched ASCII case-insensitively (escape literals with `regex::escape`). With no patterns,
    /// every line is handed over. Panics only on an invalid pattern, a bug of the caller.
    pub fn new(format: LogFormat, patterns: &[&str], limits: Limits) -> LogReader {
        let nonempty: Vec<&str> = patterns.iter().copied().filter(|l| !l.is_empty()).collect();
        LogReader {
            format,
            filter: BlockFilter::new(&nonempty),
            every_line: patterns.is_empty(),
            limits,
        }
    }

    /// Reads a stream of UTF-8 bytes to the end (or to the first I/O error) and calls the
    /// visitor for each candidate record.
    pub fn read(&self, input: &mut dyn Read, visit: &mut dyn Visit) -> ReadStats {
        self.read_with(input, visit, &mut Vec::new())
    }

    /// Looks through one chunk of a large file for what the next chunks inherit: the last
    /// `#Fields:` and `#Date:` directives and, for CSV logs, the first bare header line.
    pub fn survey(&self, input: &mut dyn Read, scratch: &mut Vec<u8>) -> Survey {
        let mut sv = Survey::default();
        let mut carry = Vec::new();
        if scratch.len() < BLOCK {
            scratch.resize(BLOCK, 0);
        }
        let scratch = &mut scratch[..BLOCK];
        // `carry` holds the unfinished last line of the previous block; lines are looked at
        // only at their start, so a block is searched for "\n" + the directive's first byte.
        let mut at_start = true;
        loop {
            let n = match input.read(scratch) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            carry.extend_from_slice(&scratch[..n]);
            let Some(last_nl) = memchr::memrchr(b'\n', &carry) else {
                continue;
            };
            self.survey_lines(&carry[..=last_nl], at_start, &mut sv);
            carry.drain(..=last_nl);
            at_start = true;
            if carry.len() > self.limits.max_line_bytes {
                carry.clear();
                at_start = false;
            }
        }
        if !carry.is_empty() {
            self.survey_lines(&carry, at_start, &mut sv);
        }
        sv
    }

    fn survey_lines(&self, data: &[u8], at_start: bool, sv: &mut Survey) {
        let mut look = |ls: usize| {
            let end = memchr::memchr(b'\n', &data[ls..]).map_or(data.len(), |i| ls + i);
            let line = &data[ls..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.limits.max_line_bytes {
                return; // skipped by the read too
            }
            let text = String::from_utf8_lossy(line);
            if let Some(d) = text.strip_prefix('#') {
                if let Some((name, value)) = d.split_once(':') {
                    let name = name.trim();
                    if name.eq_ignore_ascii_case("Fields") {
                        sv.fields = Some(value.trim().to_string());
                    } else if name.eq_ignore_ascii_case("Date") {
                        sv.date = Some(value.trim().to_string());
                    }
                }
            } else if self.format == LogFormat::ExchangeCsv
                && sv.fields.is_none()
                && sv.header.is_none()
                && looks_like_header(&text)
            {
                sv.header = Some(text.into_owned());
            }
        };
        if at_start && !data.is_empty() {
            look(0);
        }
        if self.format != LogFormat::ExchangeCsv {
            // Only directives matter: `#` is rare in logs but at their starts, so finding it is
            // much cheaper than visiting every line (the survey read 4 GiB of IIS log at half
            // the speed of the read proper).
            for i in memchr::memchr_iter(b'#', data) {
                if i > 0 && data[i - 1] == b'\n' {
                    look(i);
                }
            }
            return;
        }
        let mut from = 0;
        while let Some(i) = memchr::memchr(b'\n', &data[from..]) {
            let ls = from + i + 1;
            if ls >= data.len() {
                break;
            }
            // Only lines that can be a directive or a bare header are looked at.
            if matches!(data[ls], b'#' | b'D' | b'T' | b'd') {
                look(ls);
            }
            from = ls;
        }
    }

    /// What each chunk of a file starts with, from the surveys of the chunks before it (in file
    /// order), exactly as a sequential read would have it at that line.
    pub fn seeds(&self, surveys: &[Survey]) -> Vec<Seed> {
        let mut seeds = Vec::with_capacity(surveys.len());
        let mut cur = Seed::default();
        for sv in surveys {
            seeds.push(cur.clone());
            if let Some(f) = &sv.fields {
                cur.schema = Some(Schema::parse(self.format, f));
            } else if cur.schema.is_none()
                && let Some(h) = &sv.header
            {
                cur.schema = Some(Schema::parse(self.format, h));
            }
            if let Some(d) = &sv.date {
                cur.date_ts = Some(parse_iso(d));
            }
        }
        seeds
    }

    /// Reads one chunk of a large file (it starts at a line start, `first` when it is the
    /// start of the file). Line numbers in the records and problems are counted from the
    /// chunk's start; [`LogReader::merge`] gives each chunk's first line number.
    pub fn read_chunk(
        &self,
        input: &mut dyn Read,
        seed: &Seed,
        offset: u64,
        first: bool,
        visit: &mut dyn Visit,
        scratch: &mut Vec<u8>,
    ) -> ChunkStats {
        let mut st = State::new(self);
        st.offset = offset;
        if !first {
            st.first_line_seen = true;
            st.first_data = true;
            if let Some(schema) = &seed.schema {
                // The problem, if any, was recorded by the chunk that holds the directive.
                st.schema_ok = !matches!(visit.schema(schema), SchemaCheck::Unusable(_));
                st.schema = Some(schema.clone());
            }
            if let Some(d) = seed.date_ts {
                st.date_ts = d;
                st.date = d.map(|t| t.date_naive());
            }
        }
        self.read_state(input, visit, scratch, &mut st);
        st.chunk_stats()
    }

    /// Joins the chunks' statistics, in file order, into those of the whole file. The second
    /// value holds, per chunk, the number of lines before it: add it to the line numbers of the
    /// records the chunk handed over.
    pub fn merge(&self, parts: Vec<ChunkStats>) -> (ReadStats, Vec<u64>) {
        let mut bases = Vec::with_capacity(parts.len());
        let mut lines = 0u64;
        let mut directives = 0u64;
        let mut invalid = 0u64;
        let mut first_invalid = None;
        let mut io_failed = false;
        let mut stats = ReadStats::default();
        let mut last: Option<(String, Option<Schema>, Option<NaiveDate>)> = None;
        for (i, mut p) in parts.into_iter().enumerate() {
            bases.push(lines);
            for pr in &mut p.stats.problems {
                pr.line = pr.line.map(|l| l + lines);
            }
            if i == 0 {
                stats.first = p.stats.first;
                stats.host = p.stats.host.take();
                stats.protocol = p.stats.protocol.take();
            }
            stats.bytes += p.stats.bytes;
            for pr in p.stats.problems {
                if stats.problems.len() < 100 {
                    stats.problems.push(pr);
                }
            }
            for v in p.stats.versions {
                if !stats.versions.iter().any(|(x, _)| *x == v.0) {
                    stats.versions.push(v);
                }
            }
            if p.stats.log_type.is_some() {
                stats.log_type = p.stats.log_type;
            }
            if p.last_data.is_some() {
                last = p.last_data;
            }
            if p.invalid_utf8 > 0 && first_invalid.is_none() {
                first_invalid = p.first_invalid.map(|l| l + lines);
            }
            invalid += p.invalid_utf8;
            directives += p.directives;
            lines += p.lines;
            io_failed |= p.io_failed;
        }
        let mut st = State::new(self);
        st.stats = stats;
        st.last_data = last;
        st.line_no = lines;
        st.directives = directives;
        st.invalid_utf8 = invalid;
        st.first_invalid = first_invalid;
        st.io_failed = io_failed;
        (st.finish(), bases)
    }

    /// Like [`LogReader::read`], with a scratch buffer the caller keeps between files (a worker
    /// reads many small hourly logs; zeroing a fresh block for each cost 5% of a scan).
    pub fn read_with(
        &self,
        input: &mut dyn Read,
        visit: &mut dyn Visit,
        scratch: &mut Vec<u8>,
    ) -> ReadStats {
        let mut st = State::new(self);
        self.read_state(input, visit, scratch, &mut st);
        st.finish()
    }

    fn read_state(
        &self,
        input: &mut dyn Read,
        visit: &mut dyn Visit,
        scratch: &mut Vec<u8>,
        st: &mut State<'_>,
    ) {
        // The read buffer, then room for its lower-cased copy (the prefilter's).
        let want = BLOCK + self.limits.max_line_bytes.min(BLOCK);
        if scratch.len() != 2 * want {
            scratch.resize(2 * want, 0);
        }
        let (buf, folded) = scratch.split_at_mut(want);
        let mut filled = 0usize;
        let mut eof = false;
        let mut skipping_long = false;
        while !eof {
            // Fill the buffer.
            while filled < buf.len() {
                match input.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        filled += n;
                        st.stats.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        st.problem(
                            Cause::Unreadable,
                            None,
                            format!("read stopped: {}", io_reason(&e)),
                            true,
                        );
                        eof = true;
                        st.io_failed = true;
                        break;
                    }
                }
                if filled >= BLOCK {
                    break;
                }
            }
            let data = &buf[..filled];
            let cut = if eof {
                filled
            } else {
                memchr::memrchr(b'\n', data).map_or(0, |i| i + 1)
            };
            if cut == 0 && !eof {
                // No line end in a full buffer: a line longer than the limit.
                if filled >= self.limits.max_line_bytes || filled == buf.len() {
                    if !skipping_long {
                        let line = st.line_no + 1;
                        st.problem(
                            Cause::Limit,
                            Some(line),
                            format!(
                                "line longer than {} bytes (limit): skipped, not checked",
                                self.limits.max_line_bytes
                            ),
                            true,
                        );
                        skipping_long = true;
                    }
                    filled = 0;
                }
                continue;
            }
            let mut region = &data[..cut];
            if skipping_long {
                // Drop the tail of the long line.
                match memchr::memchr(b'\n', region) {
                    Some(i) => {
                        st.line_no += 1;
                        st.offset += (i + 1) as u64;
                        st.at_line_start = true;
                        region = &region[i + 1..];
                        skipping_long = false;
                    }
                    None => {
                        st.offset += region.len() as u64;
                        region = &[];
                    }
                }
            }
            st.region(region, folded, visit, eof);
            let consumed = cut;
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
    }
}

/// What a chunk of a large file passes on to the chunks after it (see [`LogReader::survey`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// The value of the chunk's last `#Fields:` directive.
    pub fields: Option<String>,
    /// The value of the chunk's last `#Date:` directive.
    pub date: Option<String>,
    /// The chunk's first bare CSV header line before any `#Fields:`.
    pub header: Option<String>,
}

/// The reader's state at the start of a chunk (see [`LogReader::seeds`]).
#[derive(Debug, Clone, Default)]
pub struct Seed {
    schema: Option<Schema>,
    /// `Some(None)`: a `#Date:` line that did not parse.
    date_ts: Option<Option<DateTime<Utc>>>,
}

/// What reading one chunk gave (see [`LogReader::merge`]).
#[derive(Debug)]
pub struct ChunkStats {
    stats: ReadStats,
    lines: u64,
    directives: u64,
    invalid_utf8: u64,
    first_invalid: Option<u64>,
    io_failed: bool,
    last_data: Option<(String, Option<Schema>, Option<NaiveDate>)>,
}

/// Splits `len` bytes of a seekable stream, from `skip` on, into ranges of about `target`
/// bytes that each start at a line start (a range may be longer when a line is).
pub fn split_lines<R: Read + io::Seek>(
    input: &mut R,
    skip: u64,
    len: u64,
    target: u64,
) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut start = skip;
    let mut buf = vec![0u8; 64 * 1024];
    while start < len {
        let mut cut = start.saturating_add(target.max(1));
        if cut >= len {
            out.push((start, len));
            break;
        }
        // The chunk ends after the first line end at or after `cut - 1`.
        input.seek(io::SeekFrom::Start(cut - 1))?;
        let end = loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break len;
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                break cut - 1 + i as u64 + 1;
            }
            cut += n as u64;
        };
        out.push((start, end.min(len)));
        start = end;
    }
    Ok(out)
}

struct State<'r> {
    reader: &'r LogReader,
    stats: ReadStats,
    schema: Option<Schema>,
    schema_ok: bool,
    date: Option<NaiveDate>,
    date_ts: Option<DateTime<Utc>>,
    line_no: u64,
    offset: u64,
    directives: u64,
    at_line_start: bool,
    first_line_seen: bool,
    first_data: bool,
    last_data: Option<(String, Option<Schema>, Option<NaiveDate>)>,
    invalid_utf8: u64,
    first_invalid: Option<u64>,
    missing_fields_reported: bool,
    io_failed: bool,
    /// Candidate line starts of a region, and the prefilter's hits (kept between regions).
    cands: Vec<usize>,
    hits: Vec<(usize, u128)>,
}

impl<'r> State<'r> {
    fn new(reader: &'r LogReader) -> Self {
        State {
            reader,
            stats: ReadStats::default(),
            schema: None,
            schema_ok: true,
            date: None,
            date_ts: None,
            line_no: 0,
            offset: 0,
            directives: 0,
            at_line_start: true,
            first_line_seen: false,
            first_data: false,
            last_data: None,
            invalid_utf8: 0,
            first_invalid: None,
            missing_fields_reported: false,
            io_failed: false,
            cands: Vec::new(),
            hits: Vec::new(),
        }
    }

    fn problem(&mut self, cause: Cause, line: Option<u64>, reason: String, evidence_lost: bool) {
        if self.stats.problems.len() < 100 {
            self.stats
                .problems
                .push(Problem::new(cause, reason).line(line).lost(evidence_lost));
        }
    }

    /// Processes complete lines (the last one may lack its line end at EOF).
    fn region(&mut self, region: &[u8], folded: &mut [u8], visit: &mut dyn Visit, eof: bool) {
        let base_offset = self.offset;
        let base_line = self.line_no;
        let mut counted_to = 0usize; // newlines counted in region[..counted_to]
        let mut lines_before = 0u64;
        let mut pos = 0usize;
        // The very first line of a file, and each line until the first data line, are looked at
        // directly: headers, directives and the first record's time live there.
        while pos < region.len() && (!self.first_data || (pos == 0 && region[0] == b'#')) {
            let end = memchr::memchr(b'\n', &region[pos..]).map_or(region.len(), |i| pos + i);
            let line_no = base_line + lines_before + 1;
            self.line(
                &region[pos..end],
                line_no,
                base_offset + pos as u64,
                visit,
                true,
            );
            lines_before += 1;
            pos = end + 1;
            counted_to = pos.min(region.len());
        }
        if pos < region.len() {
            let hay = &region[pos..];
            let mut cands = std::mem::take(&mut self.cands);
            if self.reader.every_line {
                cands.clear();
                cands.push(0);
                cands.extend(memchr::memchr_iter(b'\n', hay).map(|i| i + 1));
                cands.retain(|&ls| ls < hay.len());
            } else {
                let folded = &mut folded[..hay.len()];
                self.reader
                    .filter
                    .candidates(hay, folded, &mut self.hits, &mut cands);
            }
            for &ls in &cands {
                let le = memchr::memchr(b'\n', &hay[ls..]).map_or(hay.len(), |i| ls + i);
                let abs_ls = pos + ls;
                lines_before += count_nl(&region[counted_to..abs_ls]);
                counted_to = abs_ls;
                let line_no = base_line + lines_before + 1;
                self.line(
                    &hay[ls..le],
                    line_no,
                    base_offset + abs_ls as u64,
                    visit,
                    false,
                );
            }
            self.cands = cands;
        }
        lines_before += count_nl(&region[counted_to.min(region.len())..]);
        let ends_with_nl = region.last() == Some(&b'\n');
        if eof && !region.is_empty() && !ends_with_nl {
            lines_before += 1;
            self.problem(
                Cause::Truncated,
                Some(base_line + lines_before),
                "file ends without a line end (truncated, or still being written)".into(),
                false,
            );
        }
        // Remember the last data line of the region for the coverage time span.
        self.remember_last(region);
        self.line_no = base_line + lines_before;
        self.offset = base_offset + region.len() as u64;
    }

    fn remember_last(&mut self, region: &[u8]) {
        let mut end = region.len();
        for _ in 0..8 {
            while end > 0 && (region[end - 1] == b'\n' || region[end - 1] == b'\r') {
                end -= 1;
            }
            if end == 0 {
                return;
            }
            let start = memchr::memrchr(b'\n', &region[..end]).map_or(0, |i| i + 1);
            let line = &region[start..end];
            if !line.starts_with(b"#") && !line.is_empty() && self.first_data {
                let text = String::from_utf8_lossy(&line[..line.len().min(4096)]).into_owned();
                self.last_data = Some((text, self.schema.clone(), self.date));
                return;
            }
            end = start;
        }
    }

    fn line(&mut self, bytes: &[u8], line_no: u64, offset: u64, visit: &mut dyn Visit, head: bool) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.len() > self.reader.limits.max_line_bytes {
            // A long line that happened to fit in the buffer: the same limit as one that did not.
            let max = self.reader.limits.max_line_bytes;
            self.problem(
                Cause::Limit,
                Some(line_no),
                format!("line longer than {max} bytes (limit): skipped, not checked"),
                true,
            );
            return;
        }
        let text: std::borrow::Cow<'_, str> = match std::str::from_utf8(bytes) {
            Ok(s) => s.into(),
            Err(_) => {
                self.invalid_utf8 += 1;
                self.first_invalid.get_or_insert(line_no);
                String::from_utf8_lossy(bytes)
            }
        };
        let text = text.as_ref();
        let first_line = !self.first_line_seen;
        self.first_line_seen = true;
        if let Some(d) = text.strip_prefix('#') {
            self.directives += 1;
            self.directive(d, line_no, visit);
            return;
        }
        if text.is_empty() {
            return;
        }
        let fmt = self.reader.format;
        // A bare CSV header (HttpProxy files start with one; it may be repeated).
        if fmt == LogFormat::ExchangeCsv && looks_like_header(text) {
            if first_line || self.schema.is_none() {
                self.set_schema(Schema::parse(fmt, text), line_no, visit);
            }
            self.directives += 1;
            return;
        }
        if head && !self.first_data {
            self.first_data = true;
            let rec = Record::new(line_no, offset, text, fmt, self.schema.as_ref(), self.date);
            self.stats.first = rec.timestamp();
            self.stats.host = ["ServerHostName", "ServerName", "s-computername"]
                .iter()
                .find_map(|f| rec.get(f).filter(|v| !v.is_empty()).map(str::to_string));
            self.stats.protocol = rec
                .get("Protocol")
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            if !self.reader.every_line && !self.reader.filter.line_matches(bytes) {
                return;
            }
        }
        if fmt == LogFormat::Text {
            let rec = Record::new(line_no, offset, text, fmt, None, self.date);
            visit.record(&rec);
            return;
        }
        match (&self.schema, self.schema_ok) {
            (Some(schema), true) => {
                let rec = Record::new(line_no, offset, text, fmt, Some(schema), self.date);
                visit.record(&rec);
            }
            (Some(_), false) => {}
            (None, _) => {
                if !self.missing_fields_reported {
                    self.missing_fields_reported = true;
                    self.problem(
                        Cause::Format,
                        Some(line_no),
                        "no #Fields: line before the records: columns cannot be named, lines not checked".into(),
                        true,
                    );
                }
            }
        }
    }

    fn set_schema(&mut self, schema: Schema, line_no: u64, visit: &mut dyn Visit) {
        self.schema_ok = match visit.schema(&schema) {
            SchemaCheck::Usable => true,
            SchemaCheck::Partial(reason) => {
                self.problem(Cause::Format, Some(line_no), reason, true);
                true
            }
            SchemaCheck::Unusable(reason) => {
                self.problem(Cause::Format, Some(line_no), reason, true);
                false
            }
        };
        self.schema = Some(schema);
    }

    fn directive(&mut self, d: &str, line_no: u64, visit: &mut dyn Visit) {
        let (name, value) = match d.split_once(':') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => return,
        };
        let fmt = self.reader.format;
        if name.eq_ignore_ascii_case("Fields") {
            self.set_schema(Schema::parse(fmt, value), line_no, visit);
        } else if name.eq_ignore_ascii_case("Date") {
            self.date_ts = parse_iso(value);
            self.date = self.date_ts.map(|t| t.date_naive());
        } else if name.eq_ignore_ascii_case("Version") {
            if fmt == LogFormat::ExchangeCsv
                && value.starts_with("15.")
                && !self.stats.versions.iter().any(|(v, _)| v == value)
            {
                self.stats.versions.push((value.to_string(), self.date_ts));
            }
        } else if name.eq_ignore_ascii_case("Log-type") {
            self.stats.log_type = Some(value.to_string());
        }
    }

    fn chunk_stats(self) -> ChunkStats {
        ChunkStats {
            lines: self.line_no,
            directives: self.directives,
            invalid_utf8: self.invalid_utf8,
            first_invalid: self.first_invalid,
            io_failed: self.io_failed,
            last_data: self.last_data,
            stats: self.stats,
        }
    }

    fn finish(mut self) -> ReadStats {
        if let Some((text, schema, date)) = self.last_data.take() {
            let rec = Record::new(0, 0, &text, self.reader.format, schema.as_ref(), date);
            self.stats.last = rec.timestamp();
        }
        // Versions seen before any #Date get the first record's time.
        let first = self.stats.first;
        for v in &mut self.stats.versions {
            v.1 = v.1.or(first);
        }
        self.stats.records = self.line_no.saturating_sub(self.directives);
        if self.invalid_utf8 > 0 {
            let n = self.invalid_utf8;
            let l = self.first_invalid;
            self.problem(
                Cause::Encoding,
                l,
                format!(
                    "{n} candidate line(s) with invalid UTF-8, read with replacement characters"
                ),
                false,
            );
        }
        if self.stats.bytes == 0 && !self.io_failed {
            self.problem(Cause::Empty, None, "empty file".into(), false);
        } else if self.stats.records == 0 && !self.io_failed && self.stats.problems.is_empty() {
            self.problem(
                Cause::Empty,
                None,
                "no records (directives only)".into(),
                false,
            );
        }
        self.stats
    }
}

fn looks_like_header(text: &str) -> bool {
    (text.starts_with("DateTime,")
        || text.starts_with("TimeStamp,")
        || text.starts_with("date-time,"))
        && !text.as_bytes().get(9).is_some_and(u8::is_ascii_digit)
}

fn count_nl(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(u64, String)>, Vec<String>);
    impl Visit for Collect {
        fn schema(&mut self, s: &Schema) -> SchemaCheck {
            self.1.push(s.names().join("|"));
            SchemaCheck::Usable
        }
        fn record(&mut self, r: &Record<'_>) {
            self.0.push((r.line, r.raw.to_string()));
        }
    }

    fn run(reader: &LogReader, text: &[u8]) -> (Collect, ReadStats) {
        let mut c = Collect(vec![], vec![]);
        let st = reader.read(&mut &text[..], &mut c);
        (c, st)
    }

    #[test]
    fn candidates_line_numbers_and_time_span() {
        let log = "DateTime,RequestId,AnchorMailbox\r\n#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n#Date: 2021-03-03T00:00:00.000Z\r\n#Fields: DateTime,RequestId,AnchorMailbox\r\n2021-03-03T00:00:01.000Z,a,Smtp~x@y\r\n2021-03-03T00:00:02.000Z,b,ServerInfo~a]@ex:444/ecp/x#\r\n2021-03-03T00:00:03.000Z,c,Smtp~z@y\r\n";
        let r = LogReader::new(LogFormat::ExchangeCsv, &["serverinfo~"], Limits::default());
        let (c, st) = run(&r, log.as_bytes());
        assert_eq!(c.0.len(), 1);
        assert_eq!(c.0[0].0, 8);
        assert!(c.0[0].1.contains("ServerInfo~a]@ex"));
        assert_eq!(st.records, 3);
        assert_eq!(st.first.unwrap().to_rfc3339(), "2021-03-03T00:00:01+00:00");
        assert_eq!(st.last.unwrap().to_rfc3339(), "2021-03-03T00:00:03+00:00");
        assert_eq!(st.versions[0].0, "15.01.2176.002");
        assert_eq!(st.log_type.as_deref(), Some("HttpProxy Logs"));
        assert!(st.problems.is_empty(), "{:?}", st.problems);
    }

    #[test]
    fn w3c_fields_change_mid_file() {
        let log = "#Software: Microsoft Internet Information Services 10.0\n#Fields: date time cs-uri-stem\n2021-03-03 00:00:01 /ecp/y.js\n#Fields: date time cs-method cs-uri-stem\n2021-03-03 00:00:02 POST /ecp/y.js\n";
        let r = LogReader::new(LogFormat::W3c, &["/ecp/"], Limits::default());
        let (c, st) = run(&r, log.as_bytes());
        assert_eq!(c.1.len(), 2);
        assert_eq!(c.0.len(), 2);
        assert_eq!(c.0[1].0, 5);
        assert_eq!(st.last.unwrap().to_rfc3339(), "2021-03-03T00:00:02+00:00");
    }

    #[test]
    fn block_boundaries_lose_nothing() {
        // Lines of varying length over several blocks; every 7th line is a candidate and every
        // 50th a directive, so that both land on block boundaries somewhere.
        let mut log = String::from("#Fields: date time cs-uri-stem\n");
        let mut expect = vec![];
        let mut schemas = 1;
        let mut n = 1u64;
        let mut i = 0usize;
        while log.len() < 3 * BLOCK + 12345 {
            i += 1;
            n += 1;
            if i.is_multiple_of(50) {
                log.push_str("#Fields: date time cs-uri-stem\n");
                schemas += 1;
                continue;
            }
            let pad = "p".repeat(i * 37 % 300);
            if i.is_multiple_of(7) {
                log.push_str(&format!("2021-03-03 00:00:01 /ecp/{pad}\n"));
                expect.push(n);
            } else {
                log.push_str(&format!("2021-03-03 00:00:01 /owa/{pad}\n"));
            }
        }
        let r = LogReader::new(LogFormat::W3c, &["/ecp/"], Limits::default());
        let (c, st) = run(&r, log.as_bytes());
        assert_eq!(c.0.iter().map(|x| x.0).collect::<Vec<_>>(), expect);
        assert_eq!(c.1.len(), schemas);
        assert_eq!(st.records, n - schemas as u64);
    }

    /// Reads `log` in chunks of about `target` bytes, as the engine does with a large file.
    fn run_chunked(reader: &LogReader, log: &[u8], target: u64) -> (Vec<(u64, String)>, ReadStats) {
        let mut cur = std::io::Cursor::new(log);
        let chunks = split_lines(&mut cur, 0, log.len() as u64, target).unwrap();
        assert!(chunks.len() > 2, "the test needs several chunks");
        assert_eq!(chunks[0].0, 0);
        assert_eq!(chunks.last().unwrap().1, log.len() as u64);
        for w in chunks.windows(2) {
            assert_eq!(w[0].1, w[1].0);
            assert_eq!(
                log[w[1].0 as usize - 1],
                b'\n',
                "chunks start at a line start"
            );
        }
        let mut scratch = Vec::new();
        let surveys: Vec<Survey> = chunks
            .iter()
            .map(|&(s, e)| reader.survey(&mut &log[s as usize..e as usize], &mut scratch))
            .collect();
        let seeds = reader.seeds(&surveys);
        let mut records = Vec::new();
        let mut parts = Vec::new();
        let mut per_chunk = Vec::new();
        for (i, (&(s, e), seed)) in chunks.iter().zip(&seeds).enumerate() {
            let mut c = Collect(vec![], vec![]);
            let cs = reader.read_chunk(
                &mut &log[s as usize..e as usize],
                seed,
                s,
                i == 0,
                &mut c,
                &mut scratch,
            );
            parts.push(cs);
            per_chunk.push(c.0);
        }
        let (stats, bases) = reader.merge(parts);
        for (recs, base) in per_chunk.into_iter().zip(bases) {
            records.extend(recs.into_iter().map(|(l, r)| (l + base, r)));
        }
        (records, stats)
    }

    #[test]
    fn chunked_reads_equal_the_sequential_read() {
        // IIS: the field set changes mid-file (the time moves from the 2nd to the 1st column,
        // so a record read with the wrong layout has another time), #Date directives change the
        // day of time-only records, chunk boundaries fall inside lines and on directives.
        let mut log = String::new();
        for day in 0..30 {
            if day % 4 == 0 {
                log.push_str(&format!("#Software: IIS\r\n#Date: 2021-03-{:02} 00:00:00\r\n#Fields: date time cs-method cs-uri-stem sc-status\r\n", day + 1));
            } else if day % 4 == 2 {
                log.push_str(&format!("#Date: 2021-04-{:02} 00:00:00\r\n#Fields: time cs-method cs-uri-stem sc-status\r\n", day + 1));
            }
            for i in 0..40 {
                let stem = if i % 13 == 5 {
                    "/ecp/y.js"
                } else {
                    "/owa/service.svc"
                };
                let pad = "x".repeat((i * 37 + day) % 90);
                if day % 4 >= 2 {
                    log.push_str(&format!("01:02:{:02} POST {stem}?{pad} 200\r\n", i % 60));
                } else {
                    log.push_str(&format!(
                        "2021-03-{:02} 01:02:{:02} POST {stem}?{pad} 200\r\n",
                        day + 1,
                        i % 60
                    ));
                }
            }
        }
        // The last line has no line end.
        log.push_str("2021-03-30 23:59:59 POST /ecp/z.js 200");
        let r = LogReader::new(LogFormat::W3c, &["/ecp/"], Limits::default());
        let (seq, seq_stats) = run(&r, log.as_bytes());
        assert!(seq.0.len() > 50);
        for target in [700, 1000, 4096, 33_333] {
            let (recs, stats) = run_chunked(&r, log.as_bytes(), target);
            assert_eq!(recs, seq.0, "records with chunks of {target} bytes");
            assert_eq!(stats, seq_stats, "statistics with chunks of {target} bytes");
        }
        // What a record carries depends on the layout: the chunked visitor sees the same times.
        struct Times(Vec<Option<DateTime<Utc>>>);
        impl Visit for Times {
            fn record(&mut self, r: &Record<'_>) {
                self.0.push(r.timestamp());
            }
        }
        let mut seq_t = Times(vec![]);
        r.read(&mut log.as_bytes(), &mut seq_t);
        let mut cur = std::io::Cursor::new(log.as_bytes());
        let chunks = split_lines(&mut cur, 0, log.len() as u64, 1000).unwrap();
        let mut scratch = Vec::new();
        let surveys: Vec<Survey> = chunks
            .iter()
            .map(|&(s, e)| r.survey(&mut &log.as_bytes()[s as usize..e as usize], &mut scratch))
            .collect();
        let mut par_t = Times(vec![]);
        for (i, (&(s, e), seed)) in chunks.iter().zip(&r.seeds(&surveys)).enumerate() {
            r.read_chunk(
                &mut &log.as_bytes()[s as usize..e as usize],
                seed,
                s,
                i == 0,
                &mut par_t,
                &mut scratch,
            );
        }
        assert_eq!(par_t.0, seq_t.0);
        assert!(
            seq_t
                .0
                .iter()
                .any(|t| t.is_some_and(|t| t.to_rfc3339().starts_with("2021-04")))
        );

        // Exchange CSV with a bare header line and no #Fields: the header names the columns of
        // every chunk.
        let mut csv = String::from(
            "DateTime,RequestId,AnchorMailbox\r\n#Software: Microsoft Exchange Server\r\n",
        );
        for i in 0..400 {
            let anchor = if i % 17 == 3 {
                "ServerInfo~a]@ex:444/ecp/x#"
            } else {
                "Smtp~a@b"
            };
            csv.push_str(&format!(
                "2021-03-03T00:00:{:02}.000Z,{i},{anchor}\r\n",
                i % 60
            ));
        }
        let r = LogReader::new(LogFormat::ExchangeCsv, &["serverinfo~"], Limits::default());
        let (seq, seq_stats) = run(&r, csv.as_bytes());
        assert_eq!(seq.0.len(), 24);
        let (recs, stats) = run_chunked(&r, csv.as_bytes(), 1500);
        assert_eq!(recs, seq.0);
        assert_eq!(stats, seq_stats);
    }

    #[test]
    fn long_lines_are_skipped_and_reported() {
        let limits = Limits {
            max_line_bytes: 64 * 1024,
            ..Limits::default()
        };
        let mut log = b"#Fields: date time cs-uri-stem\n2021-03-03 00:00:01 /a\n".to_vec();
        log.extend(std::iter::repeat_n(b'x', 3 * BLOCK));
        log.extend(b"\n2021-03-03 00:00:02 /ecp/y.js\n");
        let r = LogReader::new(LogFormat::W3c, &["/ecp/"], limits);
        let (c, st) = run(&r, &log);
        assert_eq!(c.0.len(), 1);
        assert_eq!(c.0[0].0, 4, "line numbers stay right after a skipped line");
        assert!(
            st.problems
                .iter()
                .any(|p| p.reason.contains("longer than") && p.line == Some(3))
        );
    }

    #[test]
    fn the_line_limit_is_exact_whatever_the_buffer_holds() {
        let limits = Limits {
            max_line_bytes: 1000,
            ..Limits::default()
        };
        let long = format!("2021-03-03 00:00:01 /ecp/{}\n", "x".repeat(1200));
        let log = format!("#Fields: date time cs-uri-stem\n{long}2021-03-03 00:00:02 /ecp/y.js\n");
        let r = LogReader::new(LogFormat::W3c, &["/ecp/"], limits);
        let (c, st) = run(&r, log.as_bytes());
        assert_eq!(c.0.len(), 1);
        assert_eq!(c.0[0].0, 3);
        assert!(
            st.problems
                .iter()
                .any(|p| p.line == Some(2) && p.reason.contains("longer than 1000"))
        );
    }

    #[test]
    fn missing_fields_truncation_and_invalid_utf8() {
        let r = LogReader::new(LogFormat::ExchangeCsv, &["serverinfo~"], Limits::default());
        let (c, st) = run(
            &r,
            b"2021-03-03T00:00:01Z,ServerInfo~x/y\n2021-03-03T00:00:02Z,ServerInfo~\xff/z",
        );
        assert!(c.0.is_empty());
        assert!(
            st.problems
                .iter()
                .any(|p| p.reason.contains("no #Fields") && p.evidence_lost)
        );
        assert!(
            st.problems
                .iter()
                .any(|p| p.reason.contains("without a line end"))
        );
        assert!(
            st.problems
                .iter()
                .any(|p| p.reason.contains("invalid UTF-8"))
        );
        let (_, st) = run(&r, b"");
        assert!(st.problems.iter().any(|p| p.reason == "empty file"));
    }
}
