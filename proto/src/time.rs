//! osquery's time formats.

use chrono::{DateTime, Utc};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// osquery's `calendarTime`: `Mon Nov 23 05:09:37 2026 UTC`.
pub fn calendar_time(unix: u64) -> String {
    DateTime::<Utc>::from_timestamp(unix as i64, 0)
        .map(|t| t.format("%a %b %e %H:%M:%S %Y UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn calendar_time_matches_osquery() {
        assert_eq!(super::calendar_time(0), "Thu Jan  1 00:00:00 1970 UTC");
        assert_eq!(
            super::calendar_time(1_795_410_577),
            "Mon Nov 23 05:09:37 2026 UTC"
        );
    }
}
