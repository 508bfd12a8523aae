//! The docker backend against a real engine (dockerd or podman's service) at
//! `EDGESEC_DOCKER_SOCKET` or /var/run/docker.sock, with a local busybox image
//! (`localhost/edgesec-test/busybox:1`, built from the host's static busybox if missing).
//! Skips without an engine, except when CI=true.
#![cfg(feature = "docker")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use edgesec_runtime::{
    DockerRuntime, DockerRuntimeConfig, DockerSettings, LogQuery, ModuleRuntime, ModuleStatus,
    PullPolicy, RuntimeError,
};

const IMAGE: &str = "localhost/edgesec-test/busybox:1";

fn socket() -> Option<PathBuf> {
    let p = std::env::var_os("EDGESEC_DOCKER_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    if std::os::unix::net::UnixStream::connect(&p).is_ok() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no container engine at {} (CI=true)",
        p.display()
    );
    eprintln!("SKIPPED: no container engine at {}", p.display());
    None
}

/// Builds the busybox image with `docker import` when the engine lacks it.
fn ensure_image(sock: &Path) {
    let host = format!("unix://{}", sock.display());
    let ok = Command::new("docker")
        .args(["-H", &host, "image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "chown", "touch", "id"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&tar)
        .arg("bin")
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("docker")
        .args(["-H", &host, "import", "--change", "CMD [\"/bin/sh\"]"])
        .arg(&tar)
        .arg(IMAGE)
        .status()
        .unwrap();
    assert!(st.success(), "docker import");
}

async fn runtime(sock: &Path, state: &Path) -> DockerRuntime {
    runtime_of(sock, state, "main").await
}

/// A runtime with its own instance label (`tag`), so parallel tests never see each other's
/// containers as orphans.
async fn runtime_of(sock: &Path, state: &Path, tag: &str) -> DockerRuntime {
    DockerRuntime::connect(DockerRuntimeConfig {
        uri: format!("unix://{}", sock.display()),
        network: "none".into(),
        instance: format!("edgesec-rt-test-{}-{tag}", std::process::id()),
        state_file: Some(state.join("containers.json")),
        adopt_stop_grace: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn settings(cmd: &str) -> DockerSettings {
    DockerSettings {
        image: IMAGE.into(),
        create_options: serde_json::json!({ "Cmd": ["sh", "-c", cmd] })
            .as_object()
            .cloned()
            .unwrap(),
        pull_policy: PullPolicy::Never,
        mounts: vec![],
    }
}

#[tokio::test]
async fn create_start_logs_stop_remove_and_reattach() {
    let Some(sock) = socket() else { return };
    ensure_image(&sock);
    let state = tempfile::tempdir().unwrap();
    let rt = runtime(&sock, state.path()).await;
    let name = format!("rt-test-{}", std::process::id());
    let _ = rt.remove(&name).await;
    let m = rt
        .create(
            &name,
            settings("trap 'exit 0' TERM; echo out-line; echo err-line >&2; while true; do sleep 0.1; done").into(),
            vec![("A".into(), "1".into())],
        )
        .await
        .unwrap();
    assert!(m.to_string().starts_with("sha256:"));
    assert_eq!(rt.state(&name).await.unwrap().status, ModuleStatus::Unknown);
    let mut exits = rt.exit_events();
    rt.start(&name).await.unwrap();
    assert!(matches!(
        rt.start(&name).await,
        Err(RuntimeError::AlreadyRunning { .. })
    ));
    let st = rt.state(&name).await.unwrap();
    assert_eq!(st.status, ModuleStatus::Running);
    let pid = st.pid.unwrap();
    assert_eq!(rt.owner_of(pid).await.as_deref(), Some(name.as_str()));
    assert_eq!(rt.caller_measurement(&name, pid).await.unwrap(), m);
    assert_eq!(rt.owner_of(std::process::id() as i32).await, None);

    let mut lines = Vec::new();
    for _ in 0..100 {
        let mut rx = rt.logs(&name, LogQuery::default()).await.unwrap();
        lines.clear();
        while let Some(l) = rx.recv().await {
            lines.push((l.stream, l.text));
        }
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lines.contains(&(edgesec_runtime::LogStream::Stdout, "out-line".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(edgesec_runtime::LogStream::Stderr, "err-line".into())),
        "{lines:?}"
    );
    let mut rx = rt
        .logs(
            &name,
            LogQuery {
                tail: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut n = 0;
    while rx.recv().await.is_some() {
        n += 1;
    }
    assert_eq!(n, 1, "tail=1");

    rt.stop(&name, Duration::from_secs(5)).await.unwrap();
    let st = rt.state(&name).await.unwrap();
    assert_eq!(st.status, ModuleStatus::Stopped);
    let ev = tokio::time::timeout(Duration::from_secs(30), exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.name.as_str(), ev.status),
        (name.as_str(), ModuleStatus::Stopped)
    );

    // A second runtime on the same records re-attaches the same container.
    let id = rt.container_id(&name).unwrap();
    drop(rt);
    let rt = runtime(&sock, state.path()).await;
    let m2 = rt
        .create(
            &name,
            settings("trap 'exit 0' TERM; echo out-line; echo err-line >&2; while true; do sleep 0.1; done").into(),
            vec![("A".into(), "1".into())],
        )
        .await
        .unwrap();
    assert_eq!(m2, m);
    assert_eq!(
        rt.container_id(&name).unwrap(),
        id,
        "re-attached, not duplicated"
    );
    assert!(rt.reconcile(false).await.unwrap().is_empty());
    rt.remove(&name).await.unwrap();
    assert!(matches!(
        rt.state(&name).await,
        Err(RuntimeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_failed_pull_names_the_image() {
    let Some(sock) = socket() else { return };
    let state = tempfile::tempdir().unwrap();
    let rt = runtime(&sock, state.path()).await;
    let mut s = settings("true");
    s.image = "localhost:1/edgesec-test/missing:1".into();
    s.pull_policy = PullPolicy::OnCreate;
    let e = rt
        .create("rt-pull-test", s.into(), vec![])
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, RuntimeError::ImagePull { .. }), "{text}");
    assert!(
        text.contains("localhost:1/edgesec-test/missing:1"),
        "{text}"
    );
}

#[tokio::test]
async fn orphans_are_reported_and_removed_only_when_asked() {
    let Some(sock) = socket() else { return };
    ensure_image(&sock);
    let state = tempfile::tempdir().unwrap();
    let rt = runtime_of(&sock, state.path(), "orphans").await;
    let host = format!("unix://{}", sock.display());
    let name = format!("rt-orphan-{}", std::process::id());
    let label = format!(
        "io.edgesec.instance=edgesec-rt-test-{}-orphans",
        std::process::id()
    );
    let _ = Command::new("docker")
        .args(["-H", &host, "rm", "-f", &name])
        .output();
    let st = Command::new("docker")
        .args([
            "-H",
            &host,
            "create",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            "none",
            IMAGE,
        ])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let found = rt.reconcile(false).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, name);
    let found = rt.reconcile(true).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(rt.reconcile(false).await.unwrap().is_empty(), "removed");
}
