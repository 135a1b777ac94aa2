//! Records: a log line split into named fields, with the names taken from the file's own
//! `#Fields:` directive (Exchange adds columns between builds; IIS can change its field set in
//! the middle of a file). Only candidate lines are split, so this is never on the hot path of
//! lines that no check wants.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::time::{parse_date_time, parse_iso};

/// How lines of a log are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Exchange CSV log with `#` directives (HttpProxy, ECP server, OAB generator…).
    ExchangeCsv,
    /// IIS W3C extended log: space-separated, `#Fields:` directives.
    W3c,
    /// Plain text lines (logs whose layout is undocumented, e.g. the OAB generator log): no
    /// fields, the time is the first token of the line.
    Text,
}

/// FNV-1a for the field-name map: keys are short column names chosen by Exchange and IIS, not
/// by an attacker's input alone, and SipHash cost 5 % of a scan (issue 15).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

/// The hasher of [`FastHash`].
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Column names of a log, from its `#Fields:` line. Cheap to clone: a server's thousands of
/// hourly logs repeat the same field list, which is parsed once per thread (see [`Schema::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema(Arc<SchemaInner>);

#[derive(Debug, PartialEq, Eq)]
struct SchemaInner {
    names: Vec<String>,
    index: HashMap<String, usize, FastHash>,
    ts: TsField,
}

thread_local! {
    /// The last field lists parsed on this thread, with their format.
    static PARSED: std::cell::RefCell<Vec<(LogFormat, String, Schema)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsField {
    One(usize),
    DateTime(usize, usize),
    TimeOnly(usize),
    Unknown,
}

impl Schema {
    /// Builds a schema from the text after `#Fields:` (or a bare CSV header line).
    pub fn parse(format: LogFormat, fields: &str) -> Schema {
        let hit = PARSED.with(|c| {
            c.borrow()
                .iter()
                .find(|(f, t, _)| *f == format && t == fields)
                .map(|(_, _, s)| s.clone())
        });
        if let Some(s) = hit {
            return s;
        }
        let s = Schema::parse_new(format, fields);
        PARSED.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= 8 {
                c.remove(0);
            }
            c.push((format, fields.to_string(), s.clone()));
        });
        s
    }

    fn parse_new(format: LogFormat, fields: &str) -> Schema {
        let names: Vec<String> = match format {
            LogFormat::ExchangeCsv => fields
                .trim()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            LogFormat::W3c => fields.split_whitespace().map(str::to_string).collect(),
            LogFormat::Text => Vec::new(),
        };
        let index: HashMap<String, usize, FastHash> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_ascii_lowercase(), i))
            .collect();
        let find = |n: &str| index.get(n).copied();
        let ts = match format {
            LogFormat::W3c => match (find("date"), find("time")) {
                (Some(d), Some(t)) => TsField::DateTime(d, t),
                (None, Some(t)) => TsField::TimeOnly(t),
                _ => TsField::Unknown,
            },
            LogFormat::Text => TsField::Unknown,
            LogFormat::ExchangeCsv => {
                match find("datetime").or(find("timestamp")).or(find("date-time")) {
                    Some(i) => TsField::One(i),
                    None => TsField::Unknown,
                }
            }
        };
        Schema(Arc::new(SchemaInner { names, index, ts }))
    }

    /// Column index of a field name (case-insensitive). Checks ask for their fields on every
    /// candidate record: names the caller already writes in lower case are looked up directly;
    /// others are folded on the stack, never on the heap (issue 15: a `String` per lookup).
    pub fn index(&self, name: &str) -> Option<usize> {
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.0.index.get(name).copied();
        }
        let mut buf = [0u8; 64];
        match buf.get_mut(..name.len()) {
            Some(dst) => {
                dst.copy_from_slice(name.as_bytes());
                dst.make_ascii_lowercase();
                // Folding ASCII letters keeps UTF-8 valid.
                std::str::from_utf8(dst)
                    .ok()
                    .and_then(|n| self.0.index.get(n).copied())
            }
            None => self.0.index.get(&name.to_ascii_lowercase()).copied(),
        }
    }

    /// Whether the schema has a field.
    pub fn has(&self, name: &str) -> bool {
        self.index(name).is_some()
    }

    /// The column names.
    pub fn names(&self) -> &[String] {
        &self.0.names
    }

    /// Whether records of this schema carry a timestamp.
    pub fn has_timestamp(&self) -> bool {
        self.0.ts != TsField::Unknown
    }
}

/// A candidate line, split into fields.
#[derive(Debug)]
pub struct Record<'a> {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line in the decoded stream.
    pub offset: u64,
    /// The line without its line end.
    pub raw: &'a str,
    /// Layout.
    pub format: LogFormat,
    schema: Option<&'a Schema>,
    date_directive: Option<NaiveDate>,
    values: OnceCell<Vec<Cow<'a, str>>>,
}

impl<'a> Record<'a> {
    /// A record of a line; the line is split into fields on first use, so a check that rejects
    /// the raw line first costs no split.
    pub fn new(
        line: u64,
        offset: u64,
        raw: &'a str,
        format: LogFormat,
        schema: Option<&'a Schema>,
        date_directive: Option<NaiveDate>,
    ) -> Record<'a> {
        Record {
            line,
            offset,
            raw,
            format,
            schema,
            date_directive,
            values: OnceCell::new(),
        }
    }

    fn values(&self) -> &[Cow<'a, str>] {
        self.values.get_or_init(|| match self.format {
            LogFormat::ExchangeCsv => split_csv(self.raw),
            LogFormat::W3c => self.raw.split(' ').map(Cow::Borrowed).collect(),
            LogFormat::Text => Vec::new(),
        })
    }

    /// The value of a named field; `None` when the schema lacks it or the line is short.
    /// IIS writes `-` for an empty field; that is returned as `""`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.schema?.index(name)?;
        let v = self.values().get(i)?.as_ref();
        Some(if self.format == LogFormat::W3c && v == "-" {
            ""
        } else {
            v
        })
    }

    /// The schema of the record, if the file declared one.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema
    }

    /// Number of values on the line.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    /// Whether the line has no values.
    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    /// The record's time, from the schema's time fields (or the first field for logs whose
    /// layout is unknown).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        if self.format == LogFormat::Text || self.schema.is_none() {
            return first_time_token(self.raw);
        }
        let ts = self.schema.map(|s| s.0.ts).unwrap_or(TsField::Unknown);
        let v = self.values();
        match ts {
            TsField::One(i) => parse_iso(v.get(i)?),
            TsField::DateTime(d, t) => parse_date_time(v.get(d)?, v.get(t)?),
            TsField::TimeOnly(t) => {
                let time = NaiveTime::parse_from_str(v.get(t)?, "%H:%M:%S%.f").ok()?;
                Some(Utc.from_utc_datetime(&self.date_directive?.and_time(time)))
            }
            TsField::Unknown => None,
        }
    }
}

/// The time at the start of a line without a known layout: an ISO timestamp as first token
/// (comma- or space-separated), or an IIS-style `date time` pair.
pub fn first_time_token(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim_start_matches('"');
    let end = raw.find([',', ' ', '\t']).unwrap_or(raw.len());
    let tok = &raw[..end];
    if let Some(t) = parse_iso(tok) {
        if tok.len() > 10 {
            return Some(t);
        }
        // A date alone: try `date time`.
        let rest = raw[end..].trim_start_matches([',', ' ', '\t']);
        let tend = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
        return parse_date_time(tok, &rest[..tend]).or(Some(t));
    }
    None
}

/// Splits one CSV line: commas separate, a value may be double-quoted with `""` for a quote.
pub fn split_csv(line: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::with_capacity(80);
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        if i < b.len() && b[i] == b'"' {
            // Quoted value.
            let mut val = String::new();
            let mut j = i + 1;
            let mut seg = j;
            loop {
                match memchr::memchr(b'"', &b[j..]) {
                    None => {
                        val.push_str(&line[seg..]);
                        j = b.len();
                        break;
                    }
                    Some(k) => {
                        let q = j + k;
                        if q + 1 < b.len() && b[q + 1] == b'"' {
                            val.push_str(&line[seg..=q]);
                            j = q + 2;
                            seg = j;
                        } else {
                            val.push_str(&line[seg..q]);
                            j = q + 1;
                            break;
                        }
                    }
                }
            }
            out.push(Cow::Owned(val));
            // Skip to the next comma (anything between the closing quote and it is kept out).
            match memchr::memchr(b',', &b[j.min(b.len())..]) {
                Some(k) => i = j + k + 1,
                None => return out,
            }
        } else {
            match memchr::memchr(b',', &b[i.min(b.len())..]) {
                Some(k) => {
                    out.push(Cow::Borrowed(&line[i..i + k]));
                    i += k + 1;
                }
                None => {
                    out.push(Cow::Borrowed(&line[i.min(line.len())..]));
                    return out;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_doubled_quotes() {
        let v = split_csv(r#"a,"b,c","say ""hi""",,"#);
        assert_eq!(v, vec!["a", "b,c", r#"say "hi""#, "", ""]);
        let v = split_csv(r#""unterminated,x"#);
        assert_eq!(v, vec!["unterminated,x"]);
        assert_eq!(split_csv(""), vec![""]);
    }

    #[test]
    fn fields_are_found_by_name_whatever_their_order() {
        let s = Schema::parse(LogFormat::ExchangeCsv, "RequestId,DateTime,AnchorMailbox");
        let r = Record::new(
            5,
            0,
            "abc,2021-03-03T01:02:03.000Z,ServerInfo~a]@x:444/ecp/y#",
            LogFormat::ExchangeCsv,
            Some(&s),
            None,
        );
        assert_eq!(r.get("anchormailbox"), Some("ServerInfo~a]@x:444/ecp/y#"));
        assert_eq!(r.timestamp().unwrap().timestamp(), 1614733323);
        assert_eq!(r.get("Missing"), None);
    }

    #[test]
    fn w3c_dash_is_empty_and_time_only_uses_date_directive() {
        let s = Schema::parse(LogFormat::W3c, " time cs-method cs-uri-stem cs-username");
        let d = NaiveDate::from_ymd_opt(2021, 3, 3);
        let r = Record::new(
            1,
            0,
            "01:02:03 POST /ecp/y.js -",
            LogFormat::W3c,
            Some(&s),
            d,
        );
        assert_eq!(r.get("cs-username"), Some(""));
        assert_eq!(r.timestamp().unwrap().timestamp(), 1614733323);
    }
}
