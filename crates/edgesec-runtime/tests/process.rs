//! The process backend against real processes.
#![cfg(feature = "process")]

mod common;

use std::time::Duration;

use common::*;
use edgesec_runtime::{
    LogQuery, LogStream, ModuleRuntime, ModuleStatus, ProcessSettings, RuntimeError,
};

const GRACE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_logs_and_stops() {
    let rt = runtime().await;
    let m = rt
        .create("m", sh("echo hi; echo err >&2; sleep 30"), vec![])
        .await
        .unwrap();
    assert_eq!(m.hex().len(), 64);
    assert_eq!(rt.state("m").await.unwrap().status, ModuleStatus::Unknown);

    rt.start("m").await.unwrap();
    let st = rt.state("m").await.unwrap();
    assert_eq!(st.status, ModuleStatus::Running);
    let pid = st.pid.unwrap();
    assert!(st.started_at.is_some());

    wait_for_line(&rt, "m", "hi").await;
    let lines = wait_for_line(&rt, "m", "err").await;
    let hi = lines.iter().find(|l| l.text == "hi").unwrap();
    let err = lines.iter().find(|l| l.text == "err").unwrap();
    assert_eq!(hi.stream, LogStream::Stdout);
    assert_eq!(err.stream, LogStream::Stderr);
    let rendered = hi.render(true);
    assert!(rendered.ends_with("Z hi"), "{rendered}");
    assert!(rendered.starts_with("20"), "{rendered}");
    assert_eq!(hi.render(false), "hi");
    let tail = logs_now(
        &rt,
        "m",
        LogQuery {
            tail: Some(1),
            ..LogQuery::default()
        },
    )
    .await;
    assert_eq!(tail.len(), 1);
    assert!(
        logs_now(
            &rt,
            "m",
            LogQuery {
                since: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
                ..LogQuery::default()
            }
        )
        .await
        .is_empty()
    );

    // The main process leads its own group (and session).
    assert_eq!(edgesec_attest::read_stat(pid).unwrap().pgrp, pid);
    assert_eq!(rt.owner_of(pid).await.as_deref(), Some("m"));

    rt.stop("m", GRACE).await.unwrap();
    let st = rt.state("m").await.unwrap();
    assert_eq!(st.status, ModuleStatus::Stopped);
    assert_eq!(st.pid, None);
    assert!(st.finished_at.is_some());
    wait_for("process group gone", || (!group_exists(pid)).then_some(())).await;
    // Stopping again is fine.
    rt.stop("m", GRACE).await.unwrap();

    // Logs survive the stop; the ring is per module.
    assert!(logs_now(&rt, "m", LogQuery::default()).await.len() >= 2);
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_attributed_and_killed() {
    let rt = runtime().await;
    rt.create("parent", sh("sleep 30 & wait"), vec![])
        .await
        .unwrap();
    rt.start("parent").await.unwrap();
    let leader = rt.state("parent").await.unwrap().pid.unwrap();
    let child = wait_for("the module's child", || {
        children_of(leader)
            .into_iter()
            .find(|&p| cmdline(p).starts_with("sleep"))
    })
    .await;
    assert_eq!(rt.owner_of(child).await.as_deref(), Some("parent"));
    assert_eq!(rt.owner_of(std::process::id() as i32).await, None);
    assert_eq!(rt.owner_of(1).await, None);
    assert_eq!(rt.owner_of(-1).await, None);

    let pinned = edgesec_attest::PinnedProcess::pin(child, None).unwrap();
    rt.stop("parent", GRACE).await.unwrap();
    wait_for("child killed", || (!pinned.is_alive()).then_some(())).await;
    assert_eq!(rt.owner_of(child).await, None);
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_die_with_the_main_process() {
    // The main process exits at once and leaves a background child behind; the child must be
    // killed with it rather than run on unattributed.
    let rt = runtime().await;
    rt.create("quitter", sh("sleep 30 & echo child=$!"), vec![])
        .await
        .unwrap();
    let mut exits = rt.exit_events();
    rt.start("quitter").await.unwrap();
    let ev = tokio::time::timeout(PATIENCE, exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.name, "quitter");
    assert_eq!(ev.status, ModuleStatus::Stopped);
    assert_eq!(ev.exit_code, Some(0));
    let lines = wait_for("the child's pid in the log", || futures_now(&rt, "quitter")).await;
    let child: i32 = lines.strip_prefix("child=").unwrap().parse().unwrap();
    // The exit event is sent only after the leftovers were killed and seen to exit.
    assert!(!alive(child), "leftover child {child} still runs");
    rt.shutdown(GRACE).await.unwrap();
}

/// The `child=` line, if the module logged it already.
fn futures_now(rt: &edgesec_runtime::ProcessRuntime, name: &str) -> Option<String> {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            logs_now(rt, name, LogQuery::default())
                .await
                .into_iter()
                .find(|l| l.text.starts_with("child="))
                .map(|l| l.text)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_three_is_failed_with_event() {
    let rt = runtime().await;
    let mut exits = rt.exit_events();
    rt.create("three", sh("exit 3"), vec![]).await.unwrap();
    rt.start("three").await.unwrap();
    let ev = tokio::time::timeout(PATIENCE, exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.name, "three");
    assert_eq!(ev.status, ModuleStatus::Failed);
    assert_eq!(ev.exit_code, Some(3));
    assert_eq!(ev.signal, None);
    let st = rt.state("three").await.unwrap();
    assert_eq!(st.status, ModuleStatus::Failed);
    assert_eq!(st.exit_code, Some(3));
    assert!(st.finished_at.is_some());
    // Stopping a module whose process already ended is fine and changes nothing.
    rt.stop("three", GRACE).await.unwrap();
    assert_eq!(
        rt.state("three").await.unwrap().status,
        ModuleStatus::Failed
    );

    // A restart counts.
    rt.start("three").await.unwrap();
    let ev = tokio::time::timeout(PATIENCE, exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.exit_code, Some(3));
    assert_eq!(rt.state("three").await.unwrap().restart_count, 1);
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_fails_clearly() {
    let rt = runtime().await;
    let missing = ProcessSettings {
        command: "foo-edgesec-missing".into(),
        args: vec![],
        working_dir: None,
        user: None,
    };
    let err = rt
        .create("m", missing.clone().into(), vec![])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "module m: command \"foo-edgesec-missing\" not found"
    );

    let bad_user = ProcessSettings {
        command: "sleep".into(),
        user: Some("no-such-user-edgesec".into()),
        ..missing.clone()
    };
    let err = rt.create("m", bad_user.into(), vec![]).await.unwrap_err();
    assert!(matches!(err, RuntimeError::UserNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "module m: user \"no-such-user-edgesec\" not found"
    );

    for bad in ["", "..", "a/b", "nl\n"] {
        let err = rt.create(bad, sh("true"), vec![]).await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(matches!(
        rt.start("nope").await,
        Err(RuntimeError::NotFound { .. })
    ));

    rt.create("dup", sh("true"), vec![]).await.unwrap();
    let err = rt.create("dup", sh("true"), vec![]).await.unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyExists { .. }), "{err}");
    assert!(rt.list().await.unwrap().iter().all(|(n, _)| n == "dup"));
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_working_dir_and_user_apply() {
    let rt = runtime().await;
    let settings = ProcessSettings {
        command: "sh".into(),
        args: vec![
            "-c".into(),
            "echo foo=$FOO; echo path=$PATH; pwd; id -u; id -g; echo done".into(),
        ],
        working_dir: Some("/tmp".into()),
        user: Some("nobody".into()),
    };
    let env = vec![("FOO".to_owned(), "bar".to_owned())];
    rt.create("envy", settings.into(), env).await.unwrap();
    rt.start("envy").await.unwrap();
    let lines = wait_for_line(&rt, "envy", "done").await;
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert!(texts.contains(&"foo=bar"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("path=/") && t.contains("/bin")),
        "{texts:?}"
    );
    assert!(texts.contains(&"/tmp"), "{texts:?}");
    assert!(texts.contains(&"65534"), "{texts:?}");
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setsid_escape_is_never_attributed_to_another_module() {
    let rt = runtime().await;
    rt.create("a", sh("setsid sleep 31 & wait"), vec![])
        .await
        .unwrap();
    rt.create("b", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("b").await.unwrap();
    rt.start("a").await.unwrap();
    let leader = rt.state("a").await.unwrap().pid.unwrap();
    let escapee = wait_for("the escaped process", || {
        children_of(leader).into_iter().find(|&p| {
            cmdline(p) == "sleep 31" && edgesec_attest::read_stat(p).is_ok_and(|st| st.session == p)
        })
    })
    .await;
    let owner = rt.owner_of(escapee).await;
    let with_cgroups = rt.cgroup_dir().is_some();
    if with_cgroups {
        assert_eq!(owner.as_deref(), Some("a"), "still in a's cgroup");
    } else {
        assert_eq!(owner, None, "left the session, no cgroup: nobody's");
    }
    let pinned = edgesec_attest::PinnedProcess::pin(escapee, None).unwrap();
    rt.stop("a", GRACE).await.unwrap();
    if with_cgroups {
        wait_for("escapee killed with its cgroup", || {
            (!pinned.is_alive()).then_some(())
        })
        .await;
    } else {
        let _ = rustix::process::pidfd_send_signal(
            pinned.pidfd().as_ref(),
            rustix::process::Signal::KILL,
        );
    }
    assert_eq!(rt.state("b").await.unwrap().status, ModuleStatus::Running);
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_stops_a_running_module_and_its_cgroup() {
    let rt = runtime().await;
    rt.create("r", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("r").await.unwrap();
    let pid = rt.state("r").await.unwrap().pid.unwrap();
    let cg = rt.module_cgroup_dir("r");
    assert_eq!(cg.is_some(), rt.cgroup_dir().is_some());
    if let Some(dir) = &cg {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    }
    rt.remove("r").await.unwrap();
    assert!(matches!(
        rt.state("r").await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(matches!(
        rt.remove("r").await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(!alive(pid));
    if let Some(dir) = cg {
        assert!(!dir.exists());
    }
    // The name can be used again.
    rt.create("r", sh("true"), vec![]).await.unwrap();
    rt.shutdown(GRACE).await.unwrap();
    if let Some(parent) = rt.cgroup_dir() {
        assert!(!parent.exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_already_running() {
    let rt = runtime().await;
    rt.create("re", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("re").await.unwrap();
    let first = rt.state("re").await.unwrap().pid.unwrap();
    assert!(matches!(
        rt.start("re").await,
        Err(RuntimeError::AlreadyRunning { .. })
    ));
    rt.restart("re", GRACE).await.unwrap();
    let st = rt.state("re").await.unwrap();
    assert_eq!(st.status, ModuleStatus::Running);
    assert_eq!(st.restart_count, 1);
    assert_ne!(st.pid, Some(first));
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stop_does_not_block_other_modules() {
    let rt = std::sync::Arc::new(runtime().await);
    // Ignores SIGTERM, so its stop waits out the whole grace period.
    rt.create(
        "stubborn",
        sh("trap '' TERM; echo ready; while :; do sleep 1; done"),
        vec![],
    )
    .await
    .unwrap();
    rt.start("stubborn").await.unwrap();
    wait_for_line(&rt, "stubborn", "ready").await;
    let slow = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.stop("stubborn", Duration::from_secs(3600)).await })
    };
    rt.create("other", sh("sleep 30"), vec![]).await.unwrap();
    rt.start("other").await.unwrap();
    assert_eq!(
        rt.state("stubborn").await.unwrap().status,
        ModuleStatus::Running
    );
    rt.stop("other", GRACE).await.unwrap();
    rt.remove("other").await.unwrap();
    assert!(
        !slow.is_finished(),
        "the stubborn module's stop is still waiting"
    );
    // Giving up on the slow stop releases the module; remove then kills it.
    slow.abort();
    let _ = slow.await;
    rt.remove("stubborn").await.unwrap();
    rt.shutdown(GRACE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_until_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("go");
    let script = format!(
        "echo first; while [ ! -e '{}' ]; do sleep 0.05; done; echo second; exit 0",
        flag.display()
    );
    let rt = runtime().await;
    rt.create("f", sh(&script), vec![]).await.unwrap();
    rt.start("f").await.unwrap();
    let mut rx = rt
        .logs(
            "f",
            LogQuery {
                follow: true,
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.text, "first");
    std::fs::write(&flag, b"").unwrap();
    let second = tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.text, "second");
    // The module exits; its output ends, and so does the follow.
    let end = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap();
    assert!(end.is_none());
    rt.shutdown(GRACE).await.unwrap();
}
