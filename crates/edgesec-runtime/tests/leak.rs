//! Many create/start/stop/remove cycles leave nothing behind: no processes, no cgroup
//! directories, no file descriptors, no tasks. Alone in its own test binary so that the fd and
//! task counts are not disturbed by other tests running in parallel.
#![cfg(feature = "process")]

mod common;

use std::time::Duration;

use common::*;
use edgesec_runtime::{ModuleRuntime, ModuleStatus};

/// 200 keeps CI fast; set EDGESEC_LEAK_CYCLES=1000 for the full robustness run.
fn cycles() -> usize {
    std::env::var("EDGESEC_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_stop_remove_cycles_leak_nothing() {
    let rt = runtime().await;
    let me = std::process::id() as i32;
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up once so lazily created things (blocking pool threads, the global measurer, the
    // reactor's registrations) exist before the baseline is taken.
    rt.create("warm", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("warm").await.unwrap();
    rt.remove("warm").await.unwrap();
    let (fds_before, tasks_before) = wait_settled(&metrics, None).await;

    for i in 0..cycles() {
        let name = format!("cycle-{}", i % 7);
        rt.create(&name, sh("sleep 30"), vec![]).await.unwrap();
        rt.start(&name).await.unwrap();
        assert_eq!(rt.state(&name).await.unwrap().status, ModuleStatus::Running);
        if i % 2 == 0 {
            rt.stop(&name, Duration::from_secs(30)).await.unwrap();
            assert_eq!(rt.state(&name).await.unwrap().status, ModuleStatus::Stopped);
        }
        // Odd cycles remove a running module: remove must stop it.
        rt.remove(&name).await.unwrap();
    }

    assert!(rt.list().await.unwrap().is_empty());
    wait_for("no child processes", || {
        children_of(me).is_empty().then_some(())
    })
    .await;
    if let Some(dir) = rt.cgroup_dir() {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "cgroup dirs left: {left:?}");
    }
    wait_settled(&metrics, Some((fds_before, tasks_before))).await;

    rt.shutdown(Duration::from_secs(30)).await.unwrap();
    if let Some(dir) = rt.cgroup_dir() {
        assert!(!dir.exists(), "parent cgroup removed on shutdown");
    }
}

/// Waits until the fd and task counts reach `target` (or, without one, until they stop
/// changing for a moment), since readers and watchers finish just after the calls return.
async fn wait_settled(
    metrics: &tokio::runtime::RuntimeMetrics,
    target: Option<(usize, usize)>,
) -> (usize, usize) {
    let mut last = (usize::MAX, usize::MAX);
    let mut steady = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = (open_fds(), metrics.num_alive_tasks());
        match target {
            Some(t) if now.0 <= t.0 && now.1 <= t.1 => return now,
            None if now == last => {
                steady += 1;
                if steady >= 10 {
                    return now;
                }
            }
            None => steady = 0,
            Some(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fds/tasks did not settle: now {now:?}, wanted {target:?}"
        );
        last = now;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
