//! Timestamps as logs write them. Exchange logs use ISO-8601 UTC (`2021-03-03T04:22:11.123Z`);
//! IIS logs write UTC `date` and `time` fields (`2021-03-03` `04:22:11`). Parsing never depends on
//! the host's locale (a bug users of the PowerShell tools hit, CSS-Exchange #179).

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

/// Parses an ISO-8601 timestamp (in the model, where the event normalisation needs it too).
pub use exhunt_model::time::parse_iso;

/// Parses IIS `date` and `time` fields (always UTC in W3C logs).
pub fn parse_date_time(date: &str, time: &str) -> Option<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let t = NaiveTime::parse_from_str(time.trim(), "%H:%M:%S%.f").ok()?;
    Some(Utc.from_utc_datetime(&d.and_time(t)))
}

/// Parses a user-given time bound: an ISO date or date-time (UTC).
pub fn parse_bound(s: &str) -> Option<DateTime<Utc>> {
    parse_iso(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_and_iis_forms() {
        let a = parse_iso("2021-03-03T04:22:11.123Z").unwrap();
        assert_eq!(a.to_rfc3339(), "2021-03-03T04:22:11.123+00:00");
        assert_eq!(
            parse_iso("2021-03-03 04:22:11").unwrap().timestamp(),
            1614745331
        );
        assert_eq!(
            parse_date_time("2021-03-03", "04:22:11")
                .unwrap()
                .timestamp(),
            1614745331
        );
        assert!(parse_iso("garbage").is_none());
        assert!(parse_iso("").is_none());
        assert_eq!(parse_iso("2021-01-03").unwrap().timestamp(), 1609632000);
    }
}
