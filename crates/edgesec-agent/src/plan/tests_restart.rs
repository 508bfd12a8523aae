//! `plan`: restart policies and the backoff schedule.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::backoff::{MAX_DELAY, STABLE_RUN};
use crate::test_support::{deployment, entry, exited, identity, module};

const AGENT: &str = "edgeAgent";
const S: Duration = Duration::from_secs(1);

/// One module `m` with the given policy, and the book that has seen it `status` at `t0`.
struct Case {
    d: Deployment,
    m: ModuleDetails,
    ids: Vec<Identity>,
    book: RestartBook,
}

impl Case {
    fn new(policy: &str, m: ModuleDetails, t0: Instant) -> Case {
        let d = deployment(vec![entry(
            "m",
            json!({"restartPolicy": policy, "startupOrder": 7}),
        )]);
        let mut book = RestartBook::new();
        book.observe(std::slice::from_ref(&m), t0);
        Case {
            d,
            m,
            ids: vec![identity("m")],
            book,
        }
    }

    fn plan(&self, now: Instant) -> Vec<Action> {
        plan(
            &self.d,
            std::slice::from_ref(&self.m),
            &self.ids,
            now,
            &self.book,
            AGENT,
        )
    }

    fn observe(&mut self, now: Instant) {
        self.book.observe(std::slice::from_ref(&self.m), now);
    }
}

fn down_of(m: &ModuleDetails) -> Down {
    match crate::observed::observe(m) {
        Observed::Down(d) => d,
        other => panic!("not down: {other:?}"),
    }
}

fn restart(m: &ModuleDetails, policy: RestartPolicy, attempt: u32) -> Action {
    Action::Start {
        name: "m".into(),
        startup_order: 7,
        why: StartReason::Restart {
            policy,
            down: down_of(m),
            attempt,
        },
    }
}

fn leave(m: &ModuleDetails, policy: RestartPolicy) -> Action {
    Action::Leave {
        name: "m".into(),
        why: LeaveReason::Policy {
            policy,
            down: down_of(m),
        },
    }
}

#[test]
fn each_policy_with_each_way_down() {
    use RestartPolicy::*;
    let stopped = module("m", "stopped");
    let failed = exited(module("m", "failed"), "3");
    let dead = module("m", "dead");
    let table = [
        (Always, &stopped, true),
        (Always, &failed, true),
        (Always, &dead, true),
        (OnFailure, &stopped, false),
        (OnFailure, &failed, true),
        (OnFailure, &dead, true),
        (Never, &stopped, false),
        (Never, &failed, false),
        (Never, &dead, false),
    ];
    for (policy, m, restarts) in table {
        let t0 = Instant::now();
        let case = Case::new(&policy.to_string(), m.clone(), t0);
        let later = case.plan(t0 + S);
        if restarts {
            assert_eq!(later, [restart(m, policy, 1)], "{policy} {m:?}");
        } else {
            assert_eq!(later, [leave(m, policy)], "{policy} {m:?}");
            // and it stays so, however long we wait
            assert_eq!(case.plan(t0 + 3600 * S), [leave(m, policy)]);
        }
    }
}

#[test]
fn no_restart_before_the_backoff_expires() {
    let t0 = Instant::now();
    let m = exited(module("m", "failed"), "3");
    let case = Case::new("always", m.clone(), t0);
    let await_restart = Action::AwaitRestart {
        name: "m".into(),
        down: down_of(&m),
        policy: RestartPolicy::Always,
        due: Due {
            at: t0 + S,
            delay: S,
            attempt: 1,
        },
    };
    assert_eq!(case.plan(t0), std::slice::from_ref(&await_restart));
    assert_eq!(
        case.plan(t0 + S - Duration::from_millis(1)),
        [await_restart]
    );
    assert_eq!(case.plan(t0 + S), [restart(&m, RestartPolicy::Always, 1)]);
}

#[test]
fn backoff_doubles_and_is_capped_at_five_minutes() {
    let m = module("m", "failed");
    let mut now = Instant::now();
    let mut case = Case::new("on-failure", m.clone(), now);
    let mut delays = Vec::new();
    for attempt in 1..=12u32 {
        // the pass that sees it down waits...
        let Action::AwaitRestart { due, .. } = case.plan(now)[0].clone() else {
            panic!("expected to wait at attempt {attempt}");
        };
        assert_eq!(due.attempt, attempt);
        assert_eq!(due.at, now + due.delay);
        assert_eq!(
            case.plan(due.at - Duration::from_millis(1))[0],
            case.plan(now)[0]
        );
        delays.push(due.delay.as_secs());
        // ...and a pass at expiry restarts it, which fails again at once
        now = due.at;
        assert_eq!(
            case.plan(now),
            [restart(&m, RestartPolicy::OnFailure, attempt)]
        );
        case.book.record_restart("m");
        now += 2 * S;
        case.observe(now);
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    assert_eq!(MAX_DELAY.as_secs(), 300);
}

/// Restarts `case` `n` times, each failing at once, and returns the time after.
fn fail_repeatedly(case: &mut Case, mut now: Instant, n: u32) -> Instant {
    for _ in 0..n {
        now += MAX_DELAY;
        assert!(matches!(case.plan(now)[0], Action::Start { .. }));
        case.book.record_restart("m");
        now += S;
        case.observe(now);
    }
    now
}

#[test]
fn backoff_resets_after_ten_minutes_running() {
    let t0 = Instant::now();
    let failed = module("m", "failed");
    let mut case = Case::new("always", failed.clone(), t0);
    let mut now = fail_repeatedly(&mut case, t0, 4);
    // the fifth restart would wait 16 s; instead it comes up and runs for ten minutes
    case.m = module("m", "running");
    case.observe(now);
    now += STABLE_RUN;
    case.observe(now);
    assert_eq!(case.plan(now), []);
    case.m = failed;
    now += S;
    case.observe(now);
    let Action::AwaitRestart { due, .. } = &case.plan(now)[0] else {
        panic!()
    };
    assert_eq!((due.delay, due.attempt), (S, 1));
}

#[test]
fn a_shorter_run_does_not_reset_the_backoff() {
    let t0 = Instant::now();
    let failed = module("m", "failed");
    let mut case = Case::new("always", failed.clone(), t0);
    let mut now = fail_repeatedly(&mut case, t0, 4);
    case.m = module("m", "running");
    case.observe(now);
    now += STABLE_RUN - S;
    case.observe(now);
    case.m = failed;
    now += S;
    case.observe(now);
    let Action::AwaitRestart { due, .. } = &case.plan(now)[0] else {
        panic!()
    };
    assert_eq!((due.delay, due.attempt), (16 * S, 5));
}

#[test]
fn backoff_is_per_module() {
    let t0 = Instant::now();
    let d = deployment(vec![entry("a", json!({})), entry("b", json!({}))]);
    let modules = [module("a", "failed"), module("b", "failed")];
    let ids = [identity("a"), identity("b")];
    let mut book = RestartBook::new();
    for _ in 0..3 {
        book.record_restart("a");
    }
    book.observe(&modules, t0);
    let actions = plan(&d, &modules, &ids, t0 + S, &book, AGENT);
    assert!(matches!(&actions[0], Action::AwaitRestart { name, due, .. }
        if name == "a" && due.delay == 8 * S));
    assert!(matches!(&actions[1], Action::Start { name, .. } if name == "b"));
}

#[test]
fn a_running_module_is_never_restarted() {
    let t0 = Instant::now();
    let case = Case::new("always", module("m", "running"), t0);
    assert_eq!(case.plan(t0 + 3600 * S), []);
}
