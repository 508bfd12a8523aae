//! The real Python `azure-iot-device` SDK inside a container that edgesecd started (module type
//! `docker`, through dockerd): the same checks as `python_sdk.rs` for a process module. The SDK
//! finds its workload socket at the in-container path edgesecd mounts
//! (`/var/run/iotedge/workload.sock`), fetches the trust bundle and a SAS signature, and connects
//! with MQTT over TLS to the test listener, which checks the CONNECT and the SAS signature
//! against the module's key from keyd; a self-signed server certificate must be refused. The
//! audit log must show the calls attested as the container module.
//!
//! The container is the busybox image of `examples/quickstart-containers/build-images.sh` with
//! the host's /usr, /lib, /lib64, the venv and its base interpreter mounted read-only (nothing
//! can be pulled), and the host's network (the listener is on the host's 127.0.0.1:8883).
//! Needs an engine at `EDGESEC_DOCKER_SOCKET` or /var/run/docker.sock: skips without one, fails
//! in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::device::{Device, process_module};
use common::mqtt::{Event, Listener, PortLock, tls_config};
use common::{DEVICE, GATEWAY, HUB, PythonSdk};
use serde_json::{Value, json};

const RESULT_SECS: u64 = 90;
const BUSYBOX: &str = "localhost/edgesec/busybox:1";

struct Engine {
    socket: PathBuf,
}

impl Engine {
    fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_HOST", self.uri())
            .args(args)
            .output()
            .expect("docker CLI runs")
    }
}

/// The engine with the test images built, or a skip (a failure in CI).
fn engine() -> Option<Engine> {
    let socket = std::env::var_os("EDGESEC_DOCKER_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        return common::unavailable(
            &format!("no container engine at {}", socket.display()),
            "start dockerd (see .ci/run) or set EDGESEC_DOCKER_SOCKET",
        );
    }
    let e = Engine { socket };
    let out = Command::new("bash")
        .arg(common::workspace().join("examples/quickstart-containers/build-images.sh"))
        .arg(common::bin_dir())
        .env("DOCKER_HOST", e.uri())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "build-images.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(e)
}

/// Removes the test's containers now and when dropped.
struct Cleanup<'a>(&'a Engine, &'a [&'a str]);

impl Cleanup<'_> {
    fn run(&self) {
        let mut args = vec!["rm", "-f"];
        args.extend_from_slice(self.1);
        let _ = self.0.docker(&args);
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.run();
    }
}

/// The directory holding the venv's base interpreter (`sys.base_prefix`).
fn base_prefix(sdk: &PythonSdk) -> PathBuf {
    let out = Command::new(&sdk.python)
        .args(["-c", "import sys; print(sys.base_prefix)"])
        .output()
        .expect("python runs");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A `docker` deployment entry running the fixture with the venv's interpreter.
fn container_module(sdk: &PythonSdk, device: &Device, args: &[&str]) -> Value {
    let ro = |p: &Path| format!("{0}:{0}:ro", p.display());
    let venv = sdk
        .python
        .parent()
        .and_then(Path::parent)
        .expect("venv dir");
    let mut binds: Vec<String> = ["/usr", "/lib", "/lib64"]
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .map(ro)
        .collect();
    let base = base_prefix(sdk);
    if !base.starts_with("/usr") {
        binds.push(ro(&base));
    }
    binds.push(ro(venv));
    binds.push(ro(common::fixture("py_module.py")
        .parent()
        .expect("fixtures dir")));
    binds.push(format!("{0}:{0}", device.out.display()));
    let mut cmd = vec![
        sdk.python.display().to_string(),
        common::fixture("py_module.py").display().to_string(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    json!({
        "type": "docker",
        "status": "running",
        "restartPolicy": "never",
        "imagePullPolicy": "never",
        "settings": {
            "image": BUSYBOX,
            "createOptions": { "Cmd": cmd, "HostConfig": { "Binds": binds, "NetworkMode": "host" } }
        },
        "env": {
            "SDKTEST_OUT": { "value": device.out.display().to_string() },
            "PYTHONUNBUFFERED": { "value": "1" }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_in_a_container_connects_with_a_workload_sas() {
    let Some(sdk) = common::python_sdk() else {
        return;
    };
    let Some(engine) = engine() else { return };
    let names = ["pysdk-ctr", "pysdk-ctr-untrusted"];
    let cleanup = Cleanup(&engine, &names);
    cleanup.run();
    let _port = PortLock::acquire().await;
    let uri = engine.uri();
    let mut device = Device::start_with(|c| {
        let mut moby = toml::Table::new();
        moby.insert("uri".into(), uri.into());
        moby.insert("network".into(), "none".into());
        c.insert("moby_runtime".into(), toml::Value::Table(moby));
    })
    .await;

    // The listener's certificate: from edgesecd, fetched by a process module as itself.
    let script = common::fixture("py_module.py");
    let out = device.out.display().to_string();
    let fetcher = process_module(
        &sdk.python,
        &[script.to_str().unwrap(), "server-cert", GATEWAY],
        &[("SDKTEST_OUT", &out), ("PYTHONUNBUFFERED", "1")],
    );
    device.deploy("certfetcher", fetcher);
    let result = device.wait_result("certfetcher", RESULT_SECS).await;
    assert_eq!(result["ok"], true, "{result}");
    let read = |ext: &str| {
        std::fs::read_to_string(device.out.join(format!("certfetcher.{ext}.pem"))).unwrap()
    };
    let (chain, key) = (read("cert"), read("key"));

    // The SDK in a container connects.
    let mut listener = Listener::start(tls_config(&chain, &key)).await;
    let module = container_module(&sdk, &device, &["connect"]);
    device.deploy("pysdk-ctr", module);
    let result = device.wait_result("pysdk-ctr", RESULT_SECS).await;
    let mut events = Vec::new();
    if let Some(e) = listener.next_event(20).await {
        events.push(e);
    }
    events.extend(listener.drain());
    listener.stop().await;
    assert_eq!(
        result["ok"],
        true,
        "the SDK in a container did not connect: {result}\nlistener saw: {events:?}\n{}",
        device.diagnostics("pysdk-ctr").await
    );
    let connect = events
        .iter()
        .find_map(|e| match e {
            Event::Connected { connect, .. } => Some(connect),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no MQTT CONNECT: {events:?}"));
    assert_eq!(connect.client_id, format!("{DEVICE}/pysdk-ctr"));
    let generation = device.generation_id("pysdk-ctr").await;
    let module_key = device.module_key("pysdk-ctr", &generation).await;
    common::sas::verify(
        connect.password.as_deref().expect("a SAS token"),
        &format!("{HUB}/devices/{DEVICE}/modules/pysdk-ctr"),
        &module_key,
    )
    .unwrap_or_else(|e| panic!("SAS token in CONNECT: {e}"));
    let state = engine.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{index .Config.Labels \"io.edgesec.module\"}}",
        "pysdk-ctr",
    ]);
    assert!(
        String::from_utf8_lossy(&state.stdout)
            .trim()
            .ends_with(" pysdk-ctr"),
        "pysdk-ctr ran as a container of edgesecd: {state:?}"
    );

    // Its workload calls were attested as the container module, on its own socket.
    let audit = device.audit_of("pysdk-ctr", 2).await;
    let sign = format!("/modules/pysdk-ctr/genid/{generation}/sign");
    for route in ["/trust-bundle", sign.as_str()] {
        let r = audit
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("no audit record of {route}: {audit:?}"));
        assert_eq!(r["decision"], "allow", "{r}");
        assert_eq!(r["socket"], "workload:pysdk-ctr", "{r}");
    }

    // A self-signed certificate for the right name is refused by the SDK in the container.
    let selfsigned = rcgen::generate_simple_self_signed(vec![GATEWAY.to_owned()]).unwrap();
    let listener = Listener::start(tls_config(
        &selfsigned.cert.pem(),
        &selfsigned.signing_key.serialize_pem(),
    ))
    .await;
    let module = container_module(&sdk, &device, &["connect"]);
    device.deploy("pysdk-ctr-untrusted", module);
    let result = device.wait_result("pysdk-ctr-untrusted", RESULT_SECS).await;
    listener.stop().await;
    assert_eq!(
        result["ok"], false,
        "connected to an untrusted server: {result}"
    );
    let error = result["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate verify failed"), "{error}");
}
