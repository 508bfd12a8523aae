//! Helpers shared by the runtime's integration tests. Waits are bounded only to turn a hang
//! into a failure; nothing here asserts how fast anything is.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edgesec_runtime::{
    LogLine, LogQuery, ModuleRuntime, ModuleSettings, ProcessRuntime, ProcessRuntimeConfig,
    ProcessSettings,
};

/// Generous bound for anything we wait for.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A runtime with its own parent cgroup, so tests running in parallel (and other test
/// binaries) never see each other's module cgroups.
pub async fn runtime() -> ProcessRuntime {
    static N: AtomicUsize = AtomicUsize::new(0);
    sweep_dead_test_parents().await;
    let config = ProcessRuntimeConfig {
        cgroup_parent: format!(
            "edgesec-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
        ..ProcessRuntimeConfig::default()
    };
    ProcessRuntime::new(config).await.expect("runtime")
}

/// A test that panicked never reached its shutdown and left its parent cgroup (and maybe
/// module cgroups) behind. Those of test processes that are gone are cleaned up here, through
/// the runtime's own start-up cleanup of stale module cgroups.
async fn sweep_dead_test_parents() {
    for mount in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let Ok(rd) = std::fs::read_dir(mount) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let Some(owner) = name
                .strip_prefix("edgesec-test-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if alive(owner) {
                continue;
            }
            let config = ProcessRuntimeConfig {
                cgroup_parent: name,
                ..ProcessRuntimeConfig::default()
            };
            if let Ok(rt) = ProcessRuntime::new(config).await {
                let _ = rt.shutdown(Duration::ZERO).await;
            }
        }
    }
}

pub fn sh(script: &str) -> ModuleSettings {
    ProcessSettings {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        working_dir: None,
        user: None,
    }
    .into()
}

/// Polls `check` until it returns Some, or panics after PATIENCE.
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// All lines the module has logged so far.
pub async fn logs_now(rt: &ProcessRuntime, name: &str, query: LogQuery) -> Vec<LogLine> {
    let mut rx = rt.logs(name, query).await.expect("logs");
    let mut out = Vec::new();
    while let Some(l) = rx.recv().await {
        out.push(l);
    }
    out
}

/// Waits until the module's logs contain a line with exactly `text`.
pub async fn wait_for_line(rt: &ProcessRuntime, name: &str, text: &str) -> Vec<LogLine> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let lines = logs_now(rt, name, LogQuery::default()).await;
        if lines.iter().any(|l| l.text == text) {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for line {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pids whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| edgesec_attest::read_stat(p).is_ok_and(|st| st.ppid == ppid))
        .collect()
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    edgesec_attest::read_stat(pid).is_ok_and(|st| st.state != 'Z' && st.state != 'X')
}

/// Whether any process is in process group `pgid` (kill with signal 0).
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}
