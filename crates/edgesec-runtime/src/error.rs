//! The runtime's error type. Messages name the module first ("module X: ...") so they can go to
//! the agent and the log as they are; none of them carries secrets (environment values are
//! never echoed).

use std::fmt;
use std::io;
use std::path::PathBuf;

use edgesec_attest::AttestError;

#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    InvalidName {
        name: String,
        reason: String,
    },
    NotFound {
        name: String,
    },
    AlreadyExists {
        name: String,
    },
    /// `start` on a running module (docker answers 304 here).
    AlreadyRunning {
        name: String,
    },
    InvalidSettings {
        module: String,
        reason: String,
    },
    CommandNotFound {
        module: String,
        command: String,
    },
    NotExecutable {
        module: String,
        path: PathBuf,
    },
    UserNotFound {
        module: String,
        user: String,
    },
    /// The backend does not do this (e.g. container settings given to the process backend).
    Unsupported {
        what: String,
    },
    Measure {
        module: String,
        source: AttestError,
    },
    Spawn {
        module: String,
        source: io::Error,
    },
    Cgroup {
        module: String,
        context: String,
        source: io::Error,
    },
    /// The main process did not exit even after SIGKILL within the runtime's kill timeout
    /// (a process stuck in uninterruptible sleep).
    StopTimeout {
        module: String,
    },
    Io {
        context: String,
        source: io::Error,
    },
    /// The container engine refused or failed a request. `status` is the engine's HTTP status
    /// when it answered; `message` is its error text (it names the container or image).
    Engine {
        module: String,
        context: String,
        status: Option<u16>,
        message: String,
    },
    /// An image could not be pulled (`imagePullPolicy: on-create`).
    ImagePull {
        module: String,
        image: String,
        message: String,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RuntimeError::*;
        match self {
            InvalidName { name, reason } => write!(f, "invalid module name {name:?}: {reason}"),
            NotFound { name } => write!(f, "module {name} not found"),
            AlreadyExists { name } => write!(f, "module {name} already exists"),
            AlreadyRunning { name } => write!(f, "module {name} is already running"),
            InvalidSettings { module, reason } => write!(f, "module {module}: {reason}"),
            CommandNotFound { module, command } => {
                write!(f, "module {module}: command {command:?} not found")
            }
            NotExecutable { module, path } => write!(
                f,
                "module {module}: {:?} is not an executable file",
                path.display()
            ),
            UserNotFound { module, user } => write!(f, "module {module}: user {user:?} not found"),
            Unsupported { what } => write!(f, "not supported: {what}"),
            Measure { module, source } => {
                write!(
                    f,
                    "module {module}: cannot measure the executable: {source}"
                )
            }
            Spawn { module, source } => write!(f, "module {module}: cannot start: {source}"),
            Cgroup {
                module,
                context,
                source,
            } => write!(f, "module {module}: cgroup {context}: {source}"),
            StopTimeout { module } => {
                write!(f, "module {module}: did not exit after SIGKILL")
            }
            Io { context, source } => write!(f, "{context}: {source}"),
            Engine {
                module,
                context,
                message,
                ..
            } => write!(f, "module {module}: {context}: {message}"),
            ImagePull {
                module,
                image,
                message,
            } => write!(f, "module {module}: cannot pull image {image:?}: {message}"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Measure { source, .. } => Some(source),
            RuntimeError::Spawn { source, .. }
            | RuntimeError::Cgroup { source, .. }
            | RuntimeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
