//! Says a repeated thing once: a pass runs every few seconds, and a module that waits, or a
//! call that keeps failing, should not fill the log with the same line.

use std::collections::{HashMap, HashSet};

/// What was said last under each key, and which keys the current pass has used.
#[derive(Debug, Default)]
pub struct Notes {
    said: HashMap<String, String>,
    used: HashSet<String>,
}

impl Notes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `text` is news under `key`: true the first time, and whenever it changes or
    /// comes back after a pass without it.
    pub fn is_new(&mut self, key: &str, text: &str) -> bool {
        self.used.insert(key.to_owned());
        if self.said.get(key).is_some_and(|said| said == text) {
            return false;
        }
        self.said.insert(key.to_owned(), text.to_owned());
        true
    }

    /// Ends a pass: what it did not say again is forgotten, so it is news next time.
    pub fn end_pass(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.said.retain(|key, _| used.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_things_once_per_stretch() {
        let mut n = Notes::new();
        assert!(n.is_new("a", "x"));
        assert!(!n.is_new("a", "x"));
        assert!(n.is_new("b", "x"));
        n.end_pass();
        assert!(!n.is_new("a", "x"));
        assert!(n.is_new("a", "y"));
        n.end_pass();
        // "b" was not said in the last pass: news again
        assert!(n.is_new("b", "x"));
        n.end_pass();
        n.end_pass();
        assert!(n.is_new("b", "x"));
    }
}
