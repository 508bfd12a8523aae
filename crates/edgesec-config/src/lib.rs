//! Loading of every edgesec config file, so they all fail the same clear way: the message names
//! the file, the key and the line, and the process exits with [`EXIT_CONFIG`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

mod process;
pub use process::init_logging;

/// Exit code for a bad config (`EX_CONFIG` of sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Largest config file accepted.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A config file that could not be used.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the offending key, when known.
    pub key: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    /// An error about `key` found after parsing (a value that parsed but does not make sense).
    pub fn invalid(file: &Path, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            key: Some(key.to_owned()),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a TOML config file into `T`.
pub fn load<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let err = |message: String| ConfigError {
        file: file.to_owned(),
        key: None,
        line: None,
        message,
    };
    let meta = std::fs::metadata(file).map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(err(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
    parse(file, &text)
}

/// Parses TOML text that came from `file`.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        key: None,
        line: line_of(e.span()),
        message: e.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            file: file.to_owned(),
            key: (key != ".").then_some(key),
            line: line_of(inner.span()),
            message: inner.message().trim().to_owned(),
        }
    })
}

/// Resolves a path from a config file: relative paths are taken from the file's directory, so a
/// config directory can be moved or copied as a whole.
pub fn resolve(config_file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        let dir = config_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        name: String,
        limits: Limits,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        max: u32,
    }

    #[test]
    fn errors_name_the_file_key_and_line() {
        let f = Path::new("/etc/x.toml");
        let e = parse::<Cfg>(f, "name = \"a\"\n[limits]\nmax = \"ten\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("limits.max"));
        assert_eq!(e.line, Some(3));
        assert!(
            e.to_string()
                .starts_with("/etc/x.toml:3: key `limits.max`: invalid type"),
            "{e}"
        );

        let e = parse::<Cfg>(f, "name = \"a\"\n[limits]\nmax = 1\nmaxx = 2\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `maxx`"), "{e}");
        assert_eq!(e.line, Some(4));

        let e = parse::<Cfg>(f, "name = \n").unwrap_err();
        assert_eq!(e.line, Some(1));

        let e = parse::<Cfg>(f, "name = \"a\"\n").unwrap_err();
        assert!(e.to_string().contains("missing field `limits`"), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        assert_eq!(
            resolve(Path::new("/a/b/c.toml"), Path::new("run/s.sock")),
            Path::new("/a/b/run/s.sock")
        );
        assert_eq!(
            resolve(Path::new("/a/b/c.toml"), Path::new("/abs")),
            Path::new("/abs")
        );
        assert!(resolve(Path::new("c.toml"), Path::new("x")).is_absolute());
    }

    #[test]
    fn missing_and_odd_files() {
        let d = tempfile::tempdir().unwrap();
        let e = load::<Cfg>(&d.path().join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.toml: cannot read"), "{e}");
        let e = load::<Cfg>(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
