//! ISO-8601 timestamps as event logs and exports write them, parsed without the host's locale.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Parses an ISO-8601 timestamp, with or without `Z`, offset, fraction, or `T`.
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().trim_matches('"');
    if s.len() < 10 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    let s2 = s.trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s2, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    NaiveDate::parse_from_str(s2, "%Y-%m-%d")
        .ok()
        .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
}
