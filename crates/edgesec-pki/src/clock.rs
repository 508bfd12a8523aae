//! Time, read through a [`Clock`] that tests can move, and the check that says whether the
//! clock can be believed.
//!
//! A device without a battery-backed clock often boots in 1970 and only later gets the time
//! from the network. Certificates judged against such a clock look expired or not yet valid,
//! and a CA regenerated in that state would be dated decades wrong. So the clock counts as
//! wrong while it reads earlier than this crate's build time, or earlier (by more than a day)
//! than the latest time it was seen to read before (a high-water mark kept in the state dir).
//! While it is wrong, nothing is issued, renewed, deleted or regenerated.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::error::{PkiError, Result};
use crate::store;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until it is moved: for tests, here and in the daemon's.
#[derive(Clone, Debug)]
pub struct TestClock(Arc<Mutex<OffsetDateTime>>);

impl TestClock {
    pub fn new(start: OffsetDateTime) -> Self {
        TestClock(Arc::new(Mutex::new(start)))
    }

    /// A clock that starts at the real current time, rounded down to the second.
    pub fn starting_now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self::new(now.replace_nanosecond(0).unwrap_or(now))
    }

    pub fn set(&self, t: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// When this crate was built, from `build.rs` (SOURCE_DATE_EPOCH or the build machine's clock).
pub fn build_time() -> OffsetDateTime {
    let secs: i64 = env!("EDGESEC_PKI_BUILD_EPOCH").parse().unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How far before the build time the clock may read and still count as right: a build machine
/// whose own clock ran a little fast must not make every device wrong.
const BUILD_TIME_MARGIN: Duration = Duration::days(1);
/// How far behind the high-water mark the clock may fall (an NTP step back, a time zone mix-up
/// fixed) before it counts as wrong.
const BACKWARD_TOLERANCE: Duration = Duration::days(1);
/// The high-water mark is written at most this often, so issuing certificates costs no fsync.
const MARK_GRANULARITY: Duration = Duration::hours(1);

/// The file name of the high-water mark in the state dir.
pub const HIGH_WATER_MARK_FILE: &str = "clock-high-water-mark";

/// Judges whether a clock reading can be trusted, and keeps the high-water mark.
#[derive(Debug)]
pub struct ClockCheck {
    build_floor: OffsetDateTime,
    mark_path: Option<PathBuf>,
    mark: Mutex<Option<OffsetDateTime>>,
}

impl ClockCheck {
    /// A check against the build time and the high-water mark kept in `state_dir`. An unreadable
    /// mark is logged and ignored: a lost mark only makes the check weaker, never stricter.
    pub fn open(state_dir: &Path) -> Self {
        let path = state_dir.join(HIGH_WATER_MARK_FILE);
        let mark = match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<i64>() {
                Ok(secs) => OffsetDateTime::from_unix_timestamp(secs).ok(),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "clock high-water mark is unreadable; ignoring it");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the clock high-water mark; ignoring it");
                None
            }
        };
        ClockCheck {
            build_floor: build_time() - BUILD_TIME_MARGIN,
            mark_path: Some(path),
            mark: Mutex::new(mark),
        }
    }

    /// A check against a fixed floor only, with no persisted mark (for tests).
    pub fn with_floor(floor: OffsetDateTime) -> Self {
        ClockCheck {
            build_floor: floor,
            mark_path: None,
            mark: Mutex::new(None),
        }
    }

    /// The latest time the clock was seen to read, if any.
    pub fn high_water_mark(&self) -> Option<OffsetDateTime> {
        *self.mark.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Ok` when `now` can be believed; otherwise the error says why.
    pub fn check(&self, now: OffsetDateTime) -> Result<()> {
        if now < self.build_floor {
            return Err(PkiError::ClockNotSane {
                now,
                floor: self.build_floor,
                reason: "earlier than the build of this program",
            });
        }
        if let Some(mark) = self.high_water_mark()
            && now < mark - BACKWARD_TOLERANCE
        {
            return Err(PkiError::ClockNotSane {
                now,
                floor: mark - BACKWARD_TOLERANCE,
                reason: "earlier than a time this device has already seen; if the clock is \
                             right, remove the clock-high-water-mark file in the state directory",
            });
        }
        Ok(())
    }

    /// Checks `now` and, when it is sane and has moved on far enough, raises the mark.
    /// A failure to persist the mark is logged, not returned: it must not stop issuance.
    pub fn check_and_record(&self, now: OffsetDateTime) -> Result<()> {
        self.check(now)?;
        let mut mark = self.mark.lock().unwrap_or_else(|p| p.into_inner());
        let due = match *mark {
            None => true,
            Some(m) => now >= m + MARK_GRANULARITY,
        };
        if !due {
            return Ok(());
        }
        *mark = Some(now);
        if let Some(path) = &self.mark_path {
            let text = format!("{}\n", now.unix_timestamp());
            if let Err(e) = store::write_atomic(path, text.as_bytes()) {
                tracing::warn!(error = %e, "cannot persist the clock high-water mark");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_is_recent_and_past() {
        let built = build_time();
        assert!(built.year() >= 2024, "{built}");
        assert!(built <= OffsetDateTime::now_utc() + Duration::minutes(1));
    }

    #[test]
    fn a_1970_clock_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let check = ClockCheck::open(dir.path());
        let err = check.check(OffsetDateTime::UNIX_EPOCH).unwrap_err();
        assert!(matches!(err, PkiError::ClockNotSane { .. }), "{err}");
        assert!(check.check(OffsetDateTime::now_utc()).is_ok());
    }

    #[test]
    fn the_mark_persists_and_catches_a_step_back() {
        let dir = tempfile::tempdir().unwrap();
        let later = OffsetDateTime::now_utc() + Duration::days(400);
        {
            let check = ClockCheck::open(dir.path());
            check.check_and_record(later).unwrap();
        }
        let check = ClockCheck::open(dir.path());
        assert_eq!(
            check.high_water_mark().unwrap().unix_timestamp(),
            later.unix_timestamp()
        );
        // An hour back is tolerated, a year back is not.
        assert!(check.check(later - Duration::hours(1)).is_ok());
        let err = check.check(later - Duration::days(365)).unwrap_err();
        assert!(err.to_string().contains("already seen"), "{err}");
    }

    #[test]
    fn the_mark_is_written_coarsely_and_never_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let check = ClockCheck::open(dir.path());
        let t = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        check.check_and_record(t).unwrap();
        check.check_and_record(t + Duration::minutes(5)).unwrap();
        assert_eq!(check.high_water_mark(), Some(t));
        check.check_and_record(t - Duration::hours(2)).unwrap();
        assert_eq!(check.high_water_mark(), Some(t));
        check.check_and_record(t + Duration::hours(2)).unwrap();
        assert_eq!(check.high_water_mark(), Some(t + Duration::hours(2)));
    }

    #[test]
    fn a_garbled_mark_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HIGH_WATER_MARK_FILE), "not a number").unwrap();
        let check = ClockCheck::open(dir.path());
        assert_eq!(check.high_water_mark(), None);
        assert!(check.check(OffsetDateTime::now_utc()).is_ok());
    }

    #[test]
    fn test_clock_moves_only_when_told() {
        let c = TestClock::starting_now();
        let t0 = c.now();
        c.advance(Duration::days(3));
        assert_eq!(c.now() - t0, Duration::days(3));
        c.set(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(c.now(), OffsetDateTime::UNIX_EPOCH);
    }
}
