//! The workload API under attack: callers are attested by the kernel, modules get only their
//! own credentials, and bad input gets clear errors.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;

/// edgesecd with a probe agent and two probe modules, mod-a and $mod-b, running.
struct Setup {
    edge: Edge,
    agent: Probe,
    a: Probe,
    b: Probe,
}

fn module_spec(name: &str, command: &Path, probe: &Probe, env: &[(&str, &str)]) -> String {
    let env: Vec<_> = env
        .iter()
        .map(|(k, v)| serde_json::json!({ "key": k, "value": v }))
        .collect();
    serde_json::json!({ "name": name, "type": "process", "config": {
        "settings": { "command": command, "args": [probe_script(), &probe.dir] }, "env": env } })
    .to_string()
}

impl Setup {
    fn new() -> Setup {
        let (edge, agent) = Edge::with_probe_agent(&deployment(&[]));
        let (a, b) = (Probe::new_box(), Probe::new_box());
        let s = Setup { edge, agent, a, b };
        s.add("mod-a", &python(), &s.a, &[]);
        s.add("$mod-b", &python(), &s.b, &[]);
        s
    }

    fn mgmt(&self) -> PathBuf {
        self.edge.path("run/mgmt.sock")
    }

    fn shared(&self) -> PathBuf {
        self.edge.path("run/workload.sock")
    }

    fn own(&self, module: &str) -> PathBuf {
        self.edge.path(&format!("run/mnt/{module}.sock"))
    }

    fn add(&self, name: &str, command: &Path, probe: &Probe, env: &[(&str, &str)]) {
        let (code, body) = self.agent.call(
            &self.mgmt(),
            "POST",
            &format!("/modules?{V}"),
            Some(&module_spec(name, command, probe, env)),
        );
        assert_eq!(code, 201, "{body}");
        let enc = name.replace('$', "%24");
        assert_eq!(
            self.agent
                .call(
                    &self.mgmt(),
                    "POST",
                    &format!("/modules/{enc}/start?{V}"),
                    None
                )
                .0,
            204
        );
        probe.wait_ready();
    }

    /// The latest refusal in the audit log is `module`'s, for running another executable.
    fn assert_last_denial_was_a_mismatch(&self, module: &str) {
        let last = self
            .edge
            .audit()
            .into_iter()
            .rev()
            .find(|r| r["decision"] == "deny")
            .unwrap();
        assert_eq!(
            (last["module"].as_str(), last["reason"].as_str()),
            (Some(module), Some("measurement mismatch")),
            "{last}"
        );
    }

    fn genid(&self, module: &str) -> String {
        let (_, body) = self.edge.mgmt("GET", &format!("/identities?{V}"), None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["moduleId"] == module)
            .unwrap()["generationId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The module's key, taken from keyd the way an auditor would (this test runs as keyd's
    /// own uid, which the quickstart lets export derived keys).
    fn module_key(&self, module: &str) -> Vec<u8> {
        let keyd = edgesec_keyd::client::KeydClient::new(self.edge.path("run/keyd.sock"));
        let label = format!("{module}:{}:primary", self.genid(module));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let device = keyd.load_key("edgesec/device-key").await.unwrap();
            let child = keyd
                .derive(&device.key_handle, label.as_bytes())
                .await
                .unwrap();
            keyd.export_derived(&child.key_handle)
                .await
                .unwrap()
                .to_vec()
        })
    }
}

/// A private copy of the interpreter in `dir` (so it can be swapped or told apart by its
/// measurement), and the PYTHONHOME it needs.
fn python_copy(dir: &Path) -> (PathBuf, String) {
    let exe = dir.join("python-copy");
    std::fs::copy(python(), &exe).unwrap();
    let home = std::process::Command::new(python())
        .args(["-c", "import sys;print(sys.base_prefix)"])
        .output()
        .unwrap();
    (
        exe,
        String::from_utf8(home.stdout).unwrap().trim().to_owned(),
    )
}

fn sign_body(data: &[u8]) -> String {
    serde_json::json!({ "keyId": "primary", "algo": "HMACSHA256", "data": STANDARD.encode(data) })
        .to_string()
}

fn hmac(key: &[u8], data: &[u8]) -> String {
    STANDARD.encode(aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        data,
    ))
}

#[test]
fn modules_get_their_own_signatures_and_nothing_of_another_module() {
    let s = Setup::new();
    let data = b"hub.example%2Fdevices%2Fd%2Fmodules%2Fmod-a\n1796304423";
    let (ga, gb) = (s.genid("mod-a"), s.genid("$mod-b"));
    let sign_a = format!("/modules/mod-a/genid/{ga}/sign?{V}");
    let sign_b = format!("/modules/%24mod-b/genid/{gb}/sign?{V}");

    // a module's signature is HMAC-SHA256 under its own derived key, on either socket
    let expected = hmac(&s.module_key("mod-a"), data);
    for socket in [s.shared(), s.own("mod-a")] {
        let (code, body) = s.a.call(&socket, "POST", &sign_a, Some(&sign_body(data)));
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["digest"],
            expected.as_str()
        );
    }
    // $mod-b through its percent-encoded name works for mod-b itself
    let (code, body) =
        s.b.call(&s.shared(), "POST", &sign_b, Some(&sign_body(data)));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["digest"],
        hmac(&s.module_key("$mod-b"), data).as_str()
    );

    // mod-a asking for mod-b's signature, identity cert or decryption: 403, on any socket
    let enc = serde_json::json!({ "plaintext": STANDARD.encode(b"x"), "initializationVector": STANDARD.encode(b"iv") }).to_string();
    for (socket, method, path, body) in [
        (s.shared(), "POST", sign_b.clone(), Some(sign_body(data))),
        (
            s.shared(),
            "POST",
            format!("/modules/%24mod-b/certificate/identity?{V}"),
            None,
        ),
        (
            s.shared(),
            "POST",
            format!("/modules/%24mod-b/genid/{gb}/decrypt?{V}"),
            Some(enc.replace("plaintext", "ciphertext")),
        ),
        (
            s.shared(),
            "POST",
            format!("/modules/%24mod-b/genid/{gb}/certificate/server?{V}"),
            Some(r#"{"commonName":"x"}"#.into()),
        ),
        (
            s.own("$mod-b"),
            "POST",
            sign_a.clone(),
            Some(sign_body(data)),
        ),
        (s.own("$mod-b"), "GET", format!("/trust-bundle?{V}"), None),
    ] {
        let (code, text) = s.a.call(&socket, method, &path, body.as_deref());
        assert_eq!(
            (code, message(&text).as_str()),
            (403, "forbidden"),
            "{path} on {}",
            socket.display()
        );
    }
    // a process edgesecd did not start (this test) gets nothing either
    let (code, _) = curl(&s.shared(), "POST", &sign_a, Some(&sign_body(data)), None);
    assert_eq!(code, 403);
    // every refusal was audited with the module it resolved to and why
    let denials: Vec<_> = s
        .edge
        .audit()
        .into_iter()
        .filter(|r| {
            r["decision"] == "deny" && r["socket"].as_str().unwrap().starts_with("workload")
        })
        .collect();
    assert_eq!(denials.len(), 7, "{denials:#?}");
    assert!(
        denials
            .iter()
            .any(|r| r["module"] == "mod-a" && r["reason"] == "caller is another module")
    );
    assert!(
        denials
            .iter()
            .any(|r| r["module"].is_null() && r["reason"] == "not a process of any module")
    );
}

#[test]
fn encryption_is_bound_to_module_and_generation() {
    let s = Setup::new();
    let g = s.genid("mod-a");
    let iv = STANDARD.encode(b"0123456789ab");
    let enc = serde_json::json!({ "plaintext": STANDARD.encode(b"secret state"), "initializationVector": iv }).to_string();
    let (code, body) = s.a.call(
        &s.shared(),
        "POST",
        &format!("/modules/mod-a/genid/{g}/encrypt?{V}"),
        Some(&enc),
    );
    assert_eq!(code, 200, "{body}");
    let ct = serde_json::from_str::<serde_json::Value>(&body).unwrap()["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let dec = |genid: &str, iv: &str| {
        let b = serde_json::json!({ "ciphertext": ct, "initializationVector": iv }).to_string();
        s.a.call(
            &s.shared(),
            "POST",
            &format!("/modules/mod-a/genid/{genid}/decrypt?{V}"),
            Some(&b),
        )
    };
    let (code, body) = dec(&g, &iv);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["plaintext"],
        STANDARD.encode(b"secret state")
    );
    // another generation (or another IV) gets an error, never garbage
    for (genid, iv) in [("1234", iv.as_str()), (g.as_str(), "b3RoZXI=")] {
        let (code, body) = dec(genid, iv);
        assert_eq!(code, 400, "{body}");
        assert!(message(&body).contains("decryption failed"), "{body}");
    }
}

#[test]
fn bad_workload_input_gets_clear_errors() {
    let s = Setup::new();
    let g = s.genid("mod-a");
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "POST",
            format!("/modules/mod-a/genid/{g}/sign?{V}"),
            Some(r#"{"data":"not base64!"}"#),
            400,
            "invalid parameter: data",
        ),
        (
            "POST",
            format!("/modules/mod-a/genid/{g}/sign?{V}"),
            Some(r#"{"keyId":"primary"}"#),
            422,
            "data",
        ),
        (
            "POST",
            format!("/modules/mod-a/genid/{g}/certificate/server?{V}"),
            None,
            400,
            "missing request body",
        ),
        (
            "POST",
            format!("/modules/mod-a/genid/{g}/certificate/server?{V}"),
            Some(r#"{"expiration":"2030-01-01T00:00:00Z"}"#),
            422,
            "commonName",
        ),
        (
            "POST",
            format!("/modules/mod-a/genid/{g}/encrypt?{V}"),
            Some(r#"{"plaintext":"aGk="}"#),
            422,
            "initializationVector",
        ),
        (
            "GET",
            format!("/modules/mod-a/genid/{g}/sign?{V}"),
            None,
            400,
            "method not allowed",
        ),
        (
            "GET",
            "/trust-bundle".into(),
            None,
            400,
            "api-version not specified",
        ),
        (
            "GET",
            format!("/trust-bundle/x?{V}"),
            None,
            400,
            "method not allowed",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let (code, text) = s.a.call(&s.shared(), method, &path, body);
        assert_eq!(code, status, "{method} {path}: {text}");
        assert!(message(&text).contains(needle), "{method} {path}: {text}");
    }
    // a 10 MiB body is refused before anything reads it
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(s.shared()).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = format!(
        "POST /modules/mod-a/genid/{g}/sign?{V} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        10 << 20
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut reply = [0u8; 64];
    let n = c.read(&mut reply).unwrap();
    assert!(
        String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&reply[..n])
    );
}

#[test]
fn certificates_and_trust_bundle() {
    let s = Setup::new();
    let g = s.genid("mod-a");
    let (code, body) = s.a.call(
        &s.own("mod-a"),
        "POST",
        &format!("/modules/mod-a/genid/{g}/certificate/server?{V}"),
        Some(r#"{"commonName":"10.1.2.3"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["privateKey"]["type"], "key");
    assert!(
        v["privateKey"]["bytes"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert_eq!(
        v["certificate"]
            .as_str()
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2,
        "leaf and edge CA, no root"
    );
    assert!(v["expiration"].as_str().unwrap().ends_with('Z'));
    let (code, body) = s.b.call(
        &s.shared(),
        "POST",
        "/modules/%24mod-b/certificate/identity?api-version=2018-06-28",
        None,
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(
        &s.shared(),
        "GET",
        "/trust-bundle?api-version=2018-06-28",
        None,
        None,
    );
    assert_eq!(code, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let (code, body) = curl(
        &s.shared(),
        "GET",
        &format!("/manifest-trust-bundle?{V}"),
        None,
        None,
    );
    assert_eq!((code, body.as_str()), (200, r#"{"certificate":""}"#));
}

#[test]
fn a_module_whose_executable_was_replaced_is_refused() {
    let s = Setup::new();
    // mod-c runs its own copy of the interpreter, which we can swap behind edgesecd's back
    let dir = tempfile::tempdir().unwrap();
    let (exe, home) = python_copy(dir.path());
    let c = Probe::new_box();
    s.add("mod-c", &exe, &c, &[("PYTHONHOME", &home)]);
    let g = s.genid("mod-c");
    let sign = format!("/modules/mod-c/genid/{g}/sign?{V}");
    assert_eq!(
        c.call(&s.shared(), "POST", &sign, Some(&sign_body(b"x"))).0,
        200
    );

    // replace the file (a new inode, one byte longer: still a working interpreter) and restart
    let mut bytes = std::fs::read(&exe).unwrap();
    bytes.push(0);
    let tmp = dir.path().join("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &exe).unwrap();
    std::fs::remove_file(c.dir.join("pid")).unwrap();
    assert_eq!(
        s.edge
            .mgmt("POST", &format!("/modules/mod-c/restart?{V}"), None)
            .0,
        204
    );
    c.wait_ready();
    let (code, body) = c.call(&s.shared(), "POST", &sign, Some(&sign_body(b"x")));
    assert_eq!((code, message(&body).as_str()), (403, "forbidden"));
    s.assert_last_denial_was_a_mismatch("mod-c");
}

#[test]
fn a_process_that_execs_another_executable_loses_its_identity_on_its_open_connection() {
    let s = Setup::new();
    // mod-x runs a copy of the interpreter; `other` is a second copy, one byte longer, so a
    // working interpreter whose measurement differs
    let dir = tempfile::tempdir().unwrap();
    let (exe, home) = python_copy(dir.path());
    let mut bytes = std::fs::read(&exe).unwrap();
    bytes.push(0);
    let other = dir.path().join("python-other");
    std::fs::write(&other, bytes).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let x = Probe::new_box();
    s.add("mod-x", &exe, &x, &[("PYTHONHOME", &home)]);
    let g = s.genid("mod-x");
    let sign = format!("/modules/mod-x/genid/{g}/sign?{V}");
    let body = sign_body(b"x");

    // the first request on the connection is answered; after the exec, the same connection
    // (same process, same pidfd) is refused, because what the process runs changed
    let [first, then] = x.exec_between(
        &other,
        &s.shared(),
        ("POST", &sign, Some(&body)),
        ("POST", &sign, Some(&body)),
    );
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(
        (then.0, message(&then.1).as_str()),
        (403, "forbidden"),
        "{}",
        s.edge.log()
    );
    s.assert_last_denial_was_a_mismatch("mod-x");
}

#[test]
fn module_sockets_follow_the_module_lifecycle() {
    let s = Setup::new();
    let sock = s.own("mod-a");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o666);
    assert_eq!(
        s.edge
            .mgmt("POST", &format!("/modules/mod-a/stop?{V}"), None)
            .0,
        204
    );
    // a stale directory where the socket goes is replaced at the next start
    std::fs::remove_file(&sock).unwrap();
    std::fs::create_dir_all(sock.join("junk")).unwrap();
    assert_eq!(
        s.edge
            .mgmt("POST", &format!("/modules/mod-a/start?{V}"), None)
            .0,
        204
    );
    // A new, listening socket (its inode number may be the freed one's again: file systems
    // reuse them).
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    assert_eq!(
        s.agent
            .call(&s.mgmt(), "DELETE", &format!("/modules/mod-a?{V}"), None)
            .0,
        204
    );
    assert!(!sock.exists(), "the socket is removed with the module");
}

#[test]
fn a_flood_from_one_uid_does_not_starve_others() {
    let s = Setup::new();
    use std::os::unix::fs::PermissionsExt;
    for d in [s.edge.dir.path().to_owned(), s.edge.path("run")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // 200 connections from this uid: at most the configured number are served at once
    let held: Vec<_> = (0..200)
        .map(|_| std::os::unix::net::UnixStream::connect(s.shared()).unwrap())
        .collect();
    // refused: a 503 while few refusals are pending, a plain close beyond that (0 from curl)
    let (code, _) = curl(
        &s.shared(),
        "GET",
        &format!("/trust-bundle?{V}"),
        None,
        None,
    );
    assert!(
        code == 503 || code == 0,
        "this uid is over its limit, got {code}"
    );
    // another uid is served meanwhile
    let (code, body) = curl(
        &s.shared(),
        "GET",
        &format!("/trust-bundle?{V}"),
        None,
        Some(65534),
    );
    assert_eq!(code, 200, "{body}");
    drop(held);
    wait_until(
        "this uid to be served again",
        || {
            curl(
                &s.shared(),
                "GET",
                &format!("/trust-bundle?{V}"),
                None,
                None,
            )
            .0 == 200
        },
        || s.edge.log(),
    );
}
