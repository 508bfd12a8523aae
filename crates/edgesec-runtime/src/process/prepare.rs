//! Create-time checks and resolution of a process module: the command to an executable path,
//! the user to ids, the environment to its final form, and the executable's measurement.
//!
//! Everything that can be wrong with the settings is found here, so `create` fails with a clear
//! message instead of `start` failing later in a forked child. The resolved absolute path is
//! what every start execs, so a later change of `PATH` cannot change what runs.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use edgesec_attest::Measurement;

use super::user::{ResolvedUser, resolve_user};
use crate::error::RuntimeError;
use crate::types::ProcessSettings;

/// A module's settings after create-time resolution.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Absolute path of the executable.
    pub exe: PathBuf,
    /// argv[0]: the command as configured (multi-call binaries look at it).
    pub arg0: String,
    pub args: Vec<String>,
    pub working_dir: Option<PathBuf>,
    /// The complete environment of the module.
    pub env: Vec<(String, String)>,
    pub user: Option<ResolvedUser>,
    pub measurement: Measurement,
}

/// Runs the checks. Blocking (file system, NSS lookups, hashing): call from `spawn_blocking`.
pub(crate) fn prepare(
    module: &str,
    settings: ProcessSettings,
    env: Vec<(String, String)>,
    default_path: &str,
) -> Result<Prepared, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidSettings {
        module: module.to_owned(),
        reason,
    };
    if settings.command.is_empty() {
        return Err(invalid("command is empty".into()));
    }
    if settings.command.contains('\0') || settings.args.iter().any(|a| a.contains('\0')) {
        return Err(invalid("command and args may not contain NUL".into()));
    }
    let env = final_env(env, default_path).map_err(invalid)?;

    let working_dir = match settings.working_dir {
        None => None,
        Some(dir) => {
            if !dir.is_absolute() {
                return Err(invalid(format!(
                    "working directory {:?} is not absolute",
                    dir.display()
                )));
            }
            if !dir.is_dir() {
                return Err(invalid(format!(
                    "working directory {:?} does not exist or is not a directory",
                    dir.display()
                )));
            }
            Some(dir)
        }
    };

    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(default_path);
    let exe = resolve_command(module, &settings.command, working_dir.as_deref(), path_var)?;

    let user = match settings.user.as_deref() {
        None => None,
        Some(spec) => match resolve_user(spec) {
            Ok(Some(u)) => Some(u),
            Ok(None) => {
                return Err(RuntimeError::UserNotFound {
                    module: module.to_owned(),
                    user: spec.to_owned(),
                });
            }
            Err(e) => {
                return Err(invalid(format!("cannot look up user {spec:?}: {e}")));
            }
        },
    };

    let measurement =
        edgesec_attest::measure_file(&exe).map_err(|source| RuntimeError::Measure {
            module: module.to_owned(),
            source,
        })?;

    Ok(Prepared {
        exe,
        arg0: settings.command,
        args: settings.args,
        working_dir,
        env,
        user,
        measurement,
    })
}

/// `PATH` first (a default the daemon's env may override), then the daemon's variables.
/// Keys must be non-empty without `=` or NUL, values without NUL, and unique.
fn final_env(
    env: Vec<(String, String)>,
    default_path: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut seen = HashSet::new();
    for (k, v) in &env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return Err(format!("environment variable {k} contains NUL"));
        }
        if !seen.insert(k.as_str()) {
            return Err(format!("duplicate env var key: {k}"));
        }
    }
    let mut out = Vec::with_capacity(env.len() + 1);
    if !seen.contains("PATH") {
        out.push(("PATH".to_owned(), default_path.to_owned()));
    }
    out.extend(env);
    Ok(out)
}

/// Absolute path as is; a path with `/` relative to the working directory; a bare name searched
/// in `PATH` (only absolute `PATH` entries: a relative entry would depend on the cwd).
fn resolve_command(
    module: &str,
    command: &str,
    working_dir: Option<&Path>,
    path_var: &str,
) -> Result<PathBuf, RuntimeError> {
    let not_found = || RuntimeError::CommandNotFound {
        module: module.to_owned(),
        command: command.to_owned(),
    };
    let candidate = if command.starts_with('/') {
        PathBuf::from(command)
    } else if command.contains('/') {
        match working_dir {
            Some(dir) => dir.join(command),
            None => {
                return Err(RuntimeError::InvalidSettings {
                    module: module.to_owned(),
                    reason: format!(
                        "command {command:?} is a relative path but no working directory is set"
                    ),
                });
            }
        }
    } else {
        return path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(command))
            .find(|p| is_executable_file(p))
            .ok_or_else(not_found);
    };
    match std::fs::metadata(&candidate) {
        Err(_) => Err(not_found()),
        Ok(_) if is_executable_file(&candidate) => Ok(candidate),
        Ok(_) => Err(RuntimeError::NotExecutable {
            module: module.to_owned(),
            path: candidate,
        }),
    }
}

/// A regular file (after symlinks) with at least one execute bit.
fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(command: &str) -> ProcessSettings {
        ProcessSettings {
            command: command.into(),
            args: vec![],
            working_dir: None,
            user: None,
        }
    }

    #[test]
    fn finds_commands_in_path_and_by_absolute_path() {
        let p = prepare("m", settings("sh"), vec![], "/nonexistent:/usr/bin:/bin").unwrap();
        assert!(p.exe.is_absolute() && p.exe.ends_with("sh"));
        assert_eq!(p.arg0, "sh");
        assert_eq!(
            p.env,
            vec![("PATH".into(), "/nonexistent:/usr/bin:/bin".into())]
        );
        prepare("m", settings("/bin/sh"), vec![], "/usr/bin").unwrap();
    }

    #[test]
    fn clear_errors_for_bad_commands() {
        let e = prepare("m1", settings("foo-no-such-cmd"), vec![], "/usr/bin:/bin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "module m1: command \"foo-no-such-cmd\" not found"
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, b"x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = prepare("m1", settings(plain.to_str().unwrap()), vec![], "/bin").unwrap_err();
        assert!(matches!(e, RuntimeError::NotExecutable { .. }), "{e}");
        let e = prepare("m1", settings("./x"), vec![], "/bin").unwrap_err();
        assert!(e.to_string().contains("no working directory"), "{e}");
    }

    #[test]
    fn relative_command_uses_working_dir_and_env_overrides_path() {
        let mut s = settings("bin/sh");
        s.working_dir = Some("/usr".into());
        let env = vec![
            ("PATH".to_owned(), "/x".to_owned()),
            ("A".to_owned(), "1".to_owned()),
        ];
        let p = prepare("m", s, env, "/usr/bin").unwrap();
        assert_eq!(p.exe, PathBuf::from("/usr/bin/sh"));
        assert_eq!(p.env[0], ("PATH".to_owned(), "/x".to_owned()));
        assert_eq!(p.env.len(), 2);
    }

    #[test]
    fn bad_env_is_refused() {
        for env in [
            vec![("A=B".to_owned(), "1".to_owned())],
            vec![("".to_owned(), "1".to_owned())],
            vec![
                ("A".to_owned(), "1".to_owned()),
                ("A".to_owned(), "2".to_owned()),
            ],
        ] {
            assert!(prepare("m", settings("sh"), env, "/bin").is_err());
        }
    }
}
