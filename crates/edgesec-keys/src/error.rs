use std::fmt;

use crate::KeyId;

/// Why a key store operation failed. Every variant's text is safe to show to the caller that
/// named the key: none carries key material or a file system path.
#[derive(Debug)]
pub enum KeyError {
    /// No key with this id.
    NotFound(KeyId),
    /// `import` of an id that is taken.
    AlreadyExists(KeyId),
    /// The backend cannot do this; see `capabilities()`.
    NotSupported(&'static str),
    /// The operation does not fit the key (an HMAC key asked for ECDSA, a P-384 key for a
    /// SHA-256 digest, ...).
    WrongAlgorithm(String),
    /// The caller's input is not acceptable (digest length, empty label, bad PEM, ...).
    InvalidInput(String),
    /// Authenticated decryption failed: wrong key, wrong associated data or altered ciphertext.
    DecryptFailed,
    /// The stored key could not be read back (truncated, corrupted, or sealed under another
    /// master key). The store keeps serving every other key.
    Corrupted(KeyId),
    /// A failure inside the backend (I/O, the HSM). The detail is for the log, not the caller.
    Backend(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotFound(id) => write!(f, "key {id:?} not found"),
            KeyError::AlreadyExists(id) => write!(f, "key {id:?} already exists"),
            KeyError::NotSupported(what) => write!(f, "{what} is not supported by this key store"),
            KeyError::WrongAlgorithm(why) => write!(f, "algorithm does not fit the key: {why}"),
            KeyError::InvalidInput(why) => write!(f, "invalid input: {why}"),
            KeyError::DecryptFailed => f.write_str("decryption failed"),
            KeyError::Corrupted(id) => {
                write!(f, "stored key {id:?} is corrupted or unreadable")
            }
            KeyError::Backend(why) => write!(f, "key store failure: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}
