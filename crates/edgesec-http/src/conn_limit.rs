//! Counting open connections per caller uid.
//!
//! One misbehaving user (or one buggy module) must not be able to take every
//! connection the server can hold, so each uid gets its own budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Open-connection counts per uid, shared by the accept loop and connection tasks.
#[derive(Debug)]
pub(crate) struct ConnectionCounter {
    max_per_uid: usize,
    open: Mutex<HashMap<u32, usize>>,
}

/// Holds one connection slot for a uid; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    uid: u32,
}

impl ConnectionCounter {
    pub(crate) fn new(max_per_uid: usize) -> Arc<Self> {
        Arc::new(ConnectionCounter {
            max_per_uid,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `uid`, or returns `None` if it already has the maximum.
    pub(crate) fn try_acquire(self: &Arc<Self>, uid: u32) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(uid).or_insert(0);
        if *count >= self.max_per_uid {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            counter: Arc::clone(self),
            uid,
        })
    }

    #[cfg(test)]
    fn open_for(&self, uid: u32) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&uid).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            // Drop empty entries so the map does not grow with every uid ever seen.
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_uid_and_returned_on_drop() {
        let counter = ConnectionCounter::new(2);
        let a = counter.try_acquire(1000).unwrap();
        let _b = counter.try_acquire(1000).unwrap();
        assert!(counter.try_acquire(1000).is_none());
        // another uid has its own budget
        let _c = counter.try_acquire(1001).unwrap();
        drop(a);
        assert_eq!(counter.open_for(1000), 1);
        let _d = counter.try_acquire(1000).unwrap();
        assert!(counter.try_acquire(1000).is_none());
        drop(_c);
        assert!(counter.open.lock().unwrap().get(&1001).is_none());
    }
}
