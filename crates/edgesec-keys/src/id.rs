use std::fmt;

use crate::KeyError;

/// The longest key id accepted, in bytes.
pub const MAX_KEY_ID_LEN: usize = 200;

/// A validated key id: 1 to 200 bytes of ASCII letters, digits and `-_.:@/+=`, not starting with
/// `.` or `/`, not ending with `/`, with no `..` or `//`. Ids travel in URL paths (where `/`
/// separates segments), handles and log lines, so they are kept plain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn new(id: impl Into<String>) -> Result<Self, KeyError> {
        let id = id.into();
        let why = if id.is_empty() {
            Some("is empty")
        } else if id.len() > MAX_KEY_ID_LEN {
            Some("is longer than 200 bytes")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(&b))
        {
            Some("may hold only ASCII letters, digits and -_.:@/+=")
        } else if id.starts_with(['.', '/'])
            || id.ends_with('/')
            || id.contains("..")
            || id.contains("//")
        {
            Some("may not start with '.' or '/', end with '/', or contain '..' or '//'")
        } else {
            None
        };
        match why {
            Some(why) => Err(KeyError::InvalidInput(format!("key id {why}"))),
            None => Ok(KeyId(id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["device-id", "ca/edge", "module:x", &"a".repeat(200)] {
            assert!(KeyId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_odd_ids() {
        for id in [
            "",
            "../x",
            "/abs",
            ".hidden",
            "a b",
            "nul\0",
            "é",
            &"a".repeat(201),
        ] {
            assert!(KeyId::new(id).is_err(), "{id:?}");
        }
    }
}
