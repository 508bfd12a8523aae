//! Who may use which keys. The caller's uid comes from the kernel (SO_PEERCRED); the config
//! maps uids to key id patterns (`*` matches any run of characters, `?` one character).

/// One uid's grants.
#[derive(Debug, Clone)]
pub struct Principal {
    pub uid: u32,
    /// Key ids this uid may create, load and use.
    pub keys: Vec<String>,
    /// Key ids whose derived keys this uid may export in clear.
    pub export: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Principals(Vec<Principal>);

impl Principals {
    pub fn new(list: Vec<Principal>) -> Self {
        Principals(list)
    }

    /// True when `uid` may use the key `id`.
    pub fn may_use(&self, uid: u32, id: &str) -> bool {
        self.0
            .iter()
            .any(|p| p.uid == uid && p.keys.iter().any(|pat| glob(pat, id)))
    }

    /// True when `uid` has any grant (a known client of the key service).
    pub fn knows(&self, uid: u32) -> bool {
        self.0.iter().any(|p| p.uid == uid)
    }

    /// True when `uid` may export keys derived from `id`.
    pub fn may_export(&self, uid: u32, id: &str) -> bool {
        self.0
            .iter()
            .any(|p| p.uid == uid && p.export.iter().any(|pat| glob(pat, id)))
    }
}

/// Matches `text` against a pattern of literal characters, `*` and `?`, in linear time (the same
/// matcher routes key ids to key store backends).
pub use edgesec_keys::glob;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_per_uid() {
        let p = Principals::new(vec![Principal {
            uid: 5,
            keys: vec!["m/*".into()],
            export: vec!["m/dev".into()],
        }]);
        assert!(p.may_use(5, "m/x"));
        assert!(!p.may_use(6, "m/x"));
        assert!(!p.may_use(5, "other"));
        assert!(p.may_export(5, "m/dev"));
        assert!(!p.may_export(5, "m/x"));
    }
}
