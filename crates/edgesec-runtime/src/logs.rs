//! Log query and log line types (the management API's `/modules/{name}/logs`).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::time_fmt;

/// Which of the module's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of module output, without its line end. Lines longer than the runtime's line cap
/// (16 KiB by default) arrive split into several lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the runtime read the line.
    #[serde(with = "time_fmt::rfc3339")]
    pub time: SystemTime,
    pub stream: LogStream,
    /// The bytes as UTF-8, invalid sequences replaced with U+FFFD.
    pub text: String,
}

impl LogLine {
    /// The line as the logs endpoint prints it: `<rfc3339> <text>` with timestamps, else the
    /// text alone.
    pub fn render(&self, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}", time_fmt::format_rfc3339(self.time), self.text)
        } else {
            self.text.clone()
        }
    }
}

/// A logs request. The daemon parses the IoT Edge query forms (RFC 3339, unix seconds,
/// durations) into times; this type holds the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many of the newest matching lines (None: all).
    pub tail: Option<usize>,
    /// Only lines read at or after this time.
    pub since: Option<SystemTime>,
    /// Only lines read at or before this time; a follow ends at the first later line.
    pub until: Option<SystemTime>,
    /// For the formatter ([`LogLine::render`]); lines always carry their time.
    pub timestamps: bool,
    /// Keep streaming new lines while the module runs, until the receiver is dropped.
    pub follow: bool,
}

impl LogQuery {
    /// Whether a line's time is inside `since..=until`.
    pub fn admits(&self, t: SystemTime) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}
