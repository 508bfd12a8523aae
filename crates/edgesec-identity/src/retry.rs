//! Retries of cloud calls: network errors, throttling (429) and server errors (5xx) are tried
//! again after an exponential backoff with jitter, or after the service's `Retry-After` when
//! it gives one. Everything else is returned at once.

use std::future::Future;
use std::time::Duration;

use crate::error::CloudError;

/// The longest wait this client accepts from a `Retry-After`, so a confused service cannot
/// stall the daemon for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// The first backoff; each next one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// IoT Edge's `cloud_retries` default (1), with a 1 s first backoff.
    fn default() -> Self {
        RetryPolicy {
            retries: 1,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first retry): the service's
    /// `Retry-After` if it gave one, else `base * 2^attempt` (capped) scaled by a random
    /// factor in [0.5, 1.0], so many devices that failed together do not retry together.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(MAX_RETRY_AFTER);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        exp.mul_f64(0.5 + 0.5 * random_unit())
    }
}

/// A number in [0, 1) from the system's random source.
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// Runs `call` until it succeeds, fails for good, or the retries are used up.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut call: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.retries => {
                let wait = policy.delay(attempt, e.retry_after());
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what} failed; trying again");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `Retry-After` in seconds (the form DPS and IoT Hub use).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn status(s: u16, after: Option<u64>) -> CloudError {
        CloudError::Status {
            service: "DPS",
            status: s,
            message: String::new(),
            retry_after: after.map(Duration::from_secs),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d0 = p.delay(0, None);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d3 = p.delay(3, None);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            let d9 = p.delay(40, None);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
        assert_eq!(
            p.delay(5, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(9999))), MAX_RETRY_AFTER);
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_others_are_not() {
        let policy = RetryPolicy {
            retries: 3,
            ..Default::default()
        };
        let calls = AtomicU32::new(0);
        let r = with_retries(&policy, "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(status(503, Some(2))),
                1 => Err(CloudError::Unreachable("refused".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retries(&policy, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(status(401, None))
        })
        .await;
        assert!(r.unwrap_err().is_unauthorized());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal is final");

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retries(&policy, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(status(429, None))
        })
        .await;
        assert_eq!(r.unwrap_err(), status(429, None));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "first try and three retries"
        );
    }
}
