//! Reading the times a user names a version by (`TIMESTAMP AS OF '...'`, Python's
//! `snapshot(as_of=...)`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::Error;

/// An RFC 3339 timestamp, or a date and time without a zone (UTC), or a date (midnight UTC).
pub fn parse_timestamp(text: &str) -> crate::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(Error::InvalidArgument(format!(
        "cannot read {text:?} as a timestamp: use RFC 3339 ('2026-01-01T00:00:00Z'), \
         'YYYY-MM-DD HH:MM:SS' (UTC) or 'YYYY-MM-DD'"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_rfc_3339_or_as_utc_dates_and_times() {
        let want = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        for text in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00+01:00",
            "2026-01-01 00:00:00",
            "2026-01-01T00:00:00.000",
            "2026-01-01",
        ] {
            assert_eq!(parse_timestamp(text).ok(), want, "{text}");
        }
        assert!(parse_timestamp("yesterday").is_err());
    }
}
