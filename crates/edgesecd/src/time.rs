//! Time formats of the IoT Edge APIs: RFC 3339 in UTC with a `Z` (IoT Hub needs the `Z`), and
//! the `since`/`until` forms of the logs query.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Parses `since`/`until` as IoT Edge does: RFC 3339, then unix seconds, then a duration meaning
/// "that long ago" (`90m`, `1 day`, `2 days 3 hours`).
pub fn parse_log_time(s: &str, now: SystemTime) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(t);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return UNIX_EPOCH.checked_add(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .ok()
        .map(|d| now.checked_sub(d).unwrap_or(UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_parse_in_every_form() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_log_time("1970-01-01T00:00:10Z", now),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            parse_log_time("10", now),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            parse_log_time("90m", now),
            Some(now - Duration::from_secs(5400))
        );
        assert_eq!(
            parse_log_time("1 day", now),
            Some(now - Duration::from_secs(86_400))
        );
        assert_eq!(parse_log_time("soon", now), None);
        assert!(rfc3339(UNIX_EPOCH).ends_with('Z'));
    }
}
