//! Per-module restart bookkeeping: the only state the agent keeps between passes.
//!
//! A module that should run but is down is restarted after a delay of 1 s, doubled for every
//! restart since (2 s, 4 s, ...) up to 5 minutes. The delay counts from the pass that first saw
//! it down. Once a module has been seen running the same run for 10 minutes, the count starts
//! over. Everything here takes `now` as an argument, so tests move time by hand.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use edgesec_api::mgmt::ModuleDetails;

use crate::observed::{Observed, observe};

/// Delay before the first restart.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5 * 60);
/// A run this long resets the count.
pub const STABLE_RUN: Duration = Duration::from_secs(10 * 60);

/// The delay before restart number `attempts + 1`.
pub fn delay_for(attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts).unwrap_or(u32::MAX);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// What the agent remembers about one module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestartState {
    /// Restarts by policy since the module last ran for [`STABLE_RUN`].
    pub attempts: u32,
    /// The pass that first saw it down, in the current down period.
    pub down_since: Option<Instant>,
    /// The pass that first saw its current run.
    pub running_since: Option<Instant>,
    /// The reported start time of that run, to notice a new run between two passes.
    run_id: Option<String>,
    /// The agent stopped it (desired status `stopped`): starting it again later is not a
    /// restart, so neither policy nor backoff applies.
    pub stopped_by_agent: bool,
}

/// [`RestartState`] by module name.
#[derive(Clone, Debug, Default)]
pub struct RestartBook {
    modules: BTreeMap<String, RestartState>,
}

/// When a restart may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub at: Instant,
    /// The whole delay applied, for the log ("restarting in 4s").
    pub delay: Duration,
    /// The restart number this will be (1 for the first).
    pub attempt: u32,
}

impl RestartBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<&RestartState> {
        self.modules.get(name)
    }

    /// Records what one pass saw. Modules the daemon no longer reports are forgotten.
    pub fn observe(&mut self, modules: &[ModuleDetails], now: Instant) {
        self.modules
            .retain(|name, _| modules.iter().any(|m| &m.name == name));
        for module in modules {
            let state = self.modules.entry(module.name.clone()).or_default();
            match observe(module) {
                Observed::Running => {
                    state.down_since = None;
                    state.stopped_by_agent = false;
                    let run = module.status.start_time.clone();
                    if state.running_since.is_none() || state.run_id != run {
                        state.running_since = Some(now);
                        state.run_id = run;
                    }
                    if state
                        .running_since
                        .is_some_and(|since| now.saturating_duration_since(since) >= STABLE_RUN)
                    {
                        state.attempts = 0;
                    }
                }
                Observed::Down(_) => {
                    state.running_since = None;
                    state.run_id = None;
                    state.down_since.get_or_insert(now);
                }
                Observed::Unknown(_) => {}
            }
        }
    }

    /// When `name`, now down, may be restarted.
    pub fn restart_due(&self, name: &str, now: Instant) -> Due {
        let state = self.modules.get(name);
        let attempts = state.map_or(0, |s| s.attempts);
        let since = state.and_then(|s| s.down_since).unwrap_or(now);
        let delay = delay_for(attempts);
        Due {
            at: since + delay,
            delay,
            attempt: attempts.saturating_add(1),
        }
    }

    pub fn stopped_by_agent(&self, name: &str) -> bool {
        self.modules.get(name).is_some_and(|s| s.stopped_by_agent)
    }

    /// The agent restarted `name` by its restart policy.
    pub fn record_restart(&mut self, name: &str) {
        let state = self.modules.entry(name.to_owned()).or_default();
        state.attempts = state.attempts.saturating_add(1);
        state.down_since = None;
        state.stopped_by_agent = false;
    }

    /// The agent started `name` for the first time, or again after stopping it itself.
    pub fn record_start(&mut self, name: &str) {
        let state = self.modules.entry(name.to_owned()).or_default();
        state.down_since = None;
        state.stopped_by_agent = false;
    }

    /// The agent stopped `name` because the deployment says so.
    pub fn record_stop(&mut self, name: &str) {
        self.modules
            .entry(name.to_owned())
            .or_default()
            .stopped_by_agent = true;
    }

    /// `name` was created, replaced or removed: it starts over.
    pub fn forget(&mut self, name: &str) {
        self.modules.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::module;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_up_to_five_minutes() {
        let delays: Vec<u64> = (0..12).map(|n| delay_for(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(delay_for(31), MAX_DELAY);
        assert_eq!(delay_for(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn delay_counts_from_the_first_pass_that_saw_it_down() {
        let t0 = Instant::now();
        let mut book = RestartBook::new();
        book.observe(&[module("m", "failed")], t0);
        book.observe(&[module("m", "failed")], t0 + 5 * S);
        assert_eq!(
            book.restart_due("m", t0 + 5 * S),
            Due {
                at: t0 + S,
                delay: S,
                attempt: 1
            }
        );
        book.record_restart("m");
        book.observe(&[module("m", "failed")], t0 + 7 * S);
        assert_eq!(
            book.restart_due("m", t0 + 7 * S),
            Due {
                at: t0 + 9 * S,
                delay: 2 * S,
                attempt: 2
            }
        );
    }

    #[test]
    fn a_long_run_resets_the_count_and_a_new_run_restarts_the_clock() {
        let t0 = Instant::now();
        let mut book = RestartBook::new();
        for _ in 0..3 {
            book.record_restart("m");
        }
        let mut m = module("m", "running");
        m.status.start_time = Some("run-1".into());
        book.observe(std::slice::from_ref(&m), t0);
        book.observe(std::slice::from_ref(&m), t0 + STABLE_RUN - S);
        assert_eq!(book.get("m").unwrap().attempts, 3);
        // a different run seen between two passes: the clock starts again
        m.status.start_time = Some("run-2".into());
        book.observe(std::slice::from_ref(&m), t0 + STABLE_RUN);
        assert_eq!(book.get("m").unwrap().attempts, 3);
        book.observe(std::slice::from_ref(&m), t0 + 2 * STABLE_RUN);
        assert_eq!(book.get("m").unwrap().attempts, 0);
    }

    #[test]
    fn gone_modules_are_forgotten() {
        let t0 = Instant::now();
        let mut book = RestartBook::new();
        book.record_restart("a");
        book.record_stop("b");
        book.observe(&[module("b", "stopped")], t0);
        assert!(book.get("a").is_none());
        assert!(book.stopped_by_agent("b"));
        book.observe(&[module("b", "running")], t0);
        assert!(!book.stopped_by_agent("b"));
        book.forget("b");
        assert!(book.get("b").is_none());
    }
}
