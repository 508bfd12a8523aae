//! A budget of audit lines per caller and outcome, so that a flood of requests from one caller
//! (any local user can reach the workload socket) can neither fill the disk nor rotate every
//! earlier record out of the log. Within each second the first [`LINES_PER_SECOND`] decisions
//! of a kind are written in full; the rest are counted and written as one summary line.
//!
//! The kind is what the caller cannot vary at will: socket, uid, attested module, decision and
//! reason. The route is not part of it (any string fits there).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

pub const LINES_PER_SECOND: u32 = 50;
const WINDOW: Duration = Duration::from_secs(1);
/// Kinds tracked at once; past this, kinds whose window is over and that hold no count are
/// forgotten, and a new kind that still finds no room is counted in `unkeyed`.
const MAX_KINDS: usize = 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, Serialize)]
pub struct Kind {
    pub socket: String,
    pub uid: u32,
    pub module: Option<String>,
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

struct Window {
    start: Instant,
    written: u32,
    suppressed: u64,
}

/// What to do with one decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Only count it.
    Suppress,
}

#[derive(Default)]
pub struct Limiter {
    kinds: Mutex<HashMap<Kind, Window>>,
}

/// Decisions that were counted, not written, during a window that has ended.
#[derive(Debug, Serialize)]
pub struct Suppressed {
    #[serde(flatten)]
    pub kind: Kind,
    pub suppressed: u64,
}

impl Limiter {
    pub fn check(&self, kind: &Kind, now: Instant) -> Verdict {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if !kinds.contains_key(kind) && kinds.len() >= MAX_KINDS {
            kinds.retain(|_, w| w.suppressed > 0 || now.duration_since(w.start) < WINDOW);
            if kinds.len() >= MAX_KINDS {
                return Verdict::Suppress;
            }
        }
        let w = kinds.entry(kind.clone()).or_insert(Window {
            start: now,
            written: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= WINDOW && w.suppressed == 0 {
            (w.start, w.written) = (now, 0);
        }
        if w.written < LINES_PER_SECOND && now.duration_since(w.start) < WINDOW {
            w.written += 1;
            Verdict::Write
        } else {
            w.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// The counts of every window that has ended with decisions suppressed; those windows start
    /// afresh. Called about once a second by the writer.
    pub fn take_ended(&self, now: Instant) -> Vec<Suppressed> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (kind, w) in kinds.iter_mut() {
            if w.suppressed > 0 && now.duration_since(w.start) >= WINDOW {
                out.push(Suppressed {
                    kind: kind.clone(),
                    suppressed: w.suppressed,
                });
                *w = Window {
                    start: now,
                    written: 0,
                    suppressed: 0,
                };
            }
        }
        kinds.retain(|_, w| w.suppressed > 0 || now.duration_since(w.start) < WINDOW * 10);
        out
    }
}

/// `text` cut to at most `max` bytes on a character boundary, saying how long it was.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(uid: u32) -> Kind {
        Kind {
            socket: "workload".into(),
            uid,
            module: None,
            decision: "deny".into(),
            reason: Some("not a process of any module".into()),
        }
    }

    #[test]
    fn a_flood_is_counted_after_the_budget_and_summed_once_the_window_ends() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let verdicts: Vec<_> = (0..1000).map(|_| l.check(&kind(7), t0)).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Write).count(),
            LINES_PER_SECOND as usize
        );
        // another caller has its own budget
        assert_eq!(l.check(&kind(8), t0), Verdict::Write);
        assert!(l.take_ended(t0).is_empty(), "the window is still open");
        let ended = l.take_ended(t0 + WINDOW);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].kind.uid, ended[0].suppressed), (7, 950));
        // a new window, a new budget
        assert_eq!(l.check(&kind(7), t0 + WINDOW), Verdict::Write);
        assert!(l.take_ended(t0 + WINDOW * 3).is_empty());
    }

    #[test]
    fn kinds_are_bounded() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for uid in 0..MAX_KINDS as u32 {
            assert_eq!(l.check(&kind(uid), t0), Verdict::Write);
        }
        assert_eq!(l.check(&kind(u32::MAX), t0), Verdict::Suppress);
        // once their windows are over, idle kinds make room
        assert_eq!(l.check(&kind(u32::MAX), t0 + WINDOW), Verdict::Write);
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(clip("/modules/a", 64), "/modules/a");
        let long = "é".repeat(100);
        let c = clip(&long, 7);
        assert_eq!(c, "ééé…(200 bytes)");
    }
}
