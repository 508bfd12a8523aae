//! End-to-end harness (after crates/edgesecd/tests/common): the real `edgesecd` — which starts
//! the real `edgesec-keyd` and agent — on a copy of the quickstart in a temporary directory,
//! and the real `edgesec` binary run against it.
#![allow(dead_code)]

pub mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;

/// Long enough for a slow, busy machine; only there so a broken run ends.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn edgesec_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgesec"))
}

/// A binary of another workspace crate, next to `edgesec`. `cargo test -p edgesec` does not
/// build other packages' binaries, so they are built here once (a no-op when fresh).
pub fn sibling(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args([
                "build",
                "--quiet",
                "-p",
                "edgesecd",
                "-p",
                "edgesec-keyd",
                "-p",
                "edgesec-agent",
            ])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building edgesecd, edgesec-keyd and edgesec-agent failed"
        );
    });
    let p = edgesec_bin().with_file_name(name);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

pub fn ticker(name: &str, order: u32) -> String {
    format!(
        r#""{name}": {{ "type": "process", "restartPolicy": "always", "startupOrder": {order},
            "settings": {{ "command": "/bin/sh", "args": ["-c", "while true; do echo {name}-tick; sleep 1; done"] }} }}"#
    )
}

/// A module that prints one line and exits with `code`, never restarted.
pub fn crasher(name: &str, code: i32, order: u32) -> String {
    format!(
        r#""{name}": {{ "type": "process", "restartPolicy": "never", "startupOrder": {order},
            "settings": {{ "command": "/bin/sh", "args": ["-c", "echo {name} gives up; exit {code}"] }} }}"#
    )
}

pub fn deployment(entries: &[String]) -> String {
    format!(
        "{{ \"schemaVersion\": \"1.0\", \"modules\": {{ {} }} }}",
        entries.join(",\n")
    )
}

pub struct Edge {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub stderr: PathBuf,
}

impl Edge {
    /// The quickstart as shipped, with `deployment` as its deployment.json.
    pub fn quickstart(deployment: &str) -> Edge {
        let edgesecd = sibling("edgesecd");
        sibling("edgesec-keyd");
        sibling("edgesec-agent");
        let dir = tempfile::tempdir().unwrap();
        let qs = workspace().join("examples/quickstart");
        std::fs::copy(qs.join("keyd.toml"), dir.path().join("keyd.toml")).unwrap();
        std::fs::copy(qs.join("config.toml"), dir.path().join("config.toml")).unwrap();
        std::fs::write(dir.path().join("deployment.json"), deployment).unwrap();
        let stderr = dir.path().join("edgesecd.log");
        let log = std::fs::File::create(&stderr).unwrap();
        let mut child = Command::new(edgesecd)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        loop {
            if std::os::unix::net::UnixStream::connect(dir.path().join("run/mgmt.sock")).is_ok() {
                return Edge {
                    dir,
                    child: Some(child),
                    stderr,
                };
            }
            if let Some(s) = child.try_wait().unwrap() {
                panic!(
                    "edgesecd exited: {s}: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `edgesec --config <this quickstart> ARGS` with colour off.
    pub fn edgesec(&self, args: &[&str]) -> Output {
        Command::new(edgesec_bin())
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .env_remove("EDGESEC_MGMT_URI")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Like [`Edge::edgesec`], asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.edgesec(args);
        assert!(
            out.status.success(),
            "edgesec {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `status` of a module in `edgesec list --json`.
    pub fn status(&self, module: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["list", "--json"])).unwrap();
        v["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == module)
            .map(|m| {
                m["status"]["runtimeStatus"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
    }

    pub fn wait_status(&self, module: &str, want: &str) {
        wait_until(
            &format!("{module} {want}"),
            || self.status(module).as_deref() == Some(want),
            || self.log(),
        );
    }

    /// SIGTERM, then wait for the exit (edgesecd stops its modules and the keyd it started).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            c.wait().unwrap();
        }
    }

    /// Pid of the keyd this quickstart's edgesecd started.
    pub fn keyd_pid(&self) -> Option<i32> {
        let needle = self.path("keyd.toml").display().to_string();
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains("edgesec-keyd") && cmd.contains(&needle)).then_some(pid)
        })
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // stop modules properly even when a test failed
            edgesec_testing::terminate(c, Duration::from_secs(30));
        }
    }
}

pub fn wait_until(what: &str, ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    edgesec_testing::wait_until(what, DEADLINE, ok, context)
}

/// Compares `actual` with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        want,
        "output differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

/// Replaces what changes from run to run: times of day, durations, the version.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    let words: Vec<&str> = text.split_inclusive([' ', '\n']).collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let num = w.trim_end().chars().all(|c| c.is_ascii_digit()) && !w.trim().is_empty();
        let unit = words
            .get(i + 1)
            .map(|u| u.trim_end_matches([' ', '\n', ',']));
        if num
            && matches!(
                unit,
                Some("second" | "seconds" | "minute" | "minutes" | "hour" | "hours")
            )
        {
            out.push_str("<duration>");
            // keep what followed the unit (a space, a newline, a comma)
            let u = words[i + 1];
            out.push_str(&u[u.trim_end_matches([' ', '\n', ',']).len()..]);
            i += 2;
            continue;
        }
        out.push_str(w);
        i += 1;
    }
    let out = replace_dates(&out);
    out.replace(env!("CARGO_PKG_VERSION"), "<version>")
}

/// `2026-12-03T14:09:41Z` → `<date>`.
fn replace_dates(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    while i < b.len() {
        let fits = i + shape.len() <= b.len()
            && shape.iter().zip(&b[i..]).all(|(p, c)| {
                if *p == b'd' {
                    c.is_ascii_digit()
                } else {
                    p == c
                }
            });
        if fits {
            out.push_str("<date>");
            i += shape.len();
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// A table as cells joined by ` | ` (column widths depend on the normalized cells).
pub fn cells(table: &str) -> String {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
