//! Bad input of every kind gets a clear error, never a crash, and never changes stored state.

mod common;

use common::{ALL_KEYS, Keyd, V, rt};
use edgesec_keys::SymmetricUsage;

fn handle_of(keyd: &Keyd, id: &str) -> String {
    rt().block_on(keyd.client.create_key_pair(id, None))
        .unwrap()
        .key_handle
}

fn sign_body(handle: &str, extra: &str) -> String {
    format!("{{\"keyHandle\":\"{handle}\",\"algorithm\":\"ecdsa-sha256\"{extra}}}")
}

#[test]
fn malformed_requests_get_clear_errors_and_change_nothing() {
    let keyd = Keyd::start(ALL_KEYS);
    let h = handle_of(&keyd, "k");
    let mac = rt()
        .block_on(keyd.client.create_key("mac", SymmetricUsage::HmacSha256))
        .unwrap()
        .key_handle;
    let before = keyd.store_files();
    let big = format!("{{\"keyId\":\"{}\"}}", "a".repeat(70_000));
    let (payload, tag) = h.trim_start_matches("v1.").split_once('.').unwrap();
    let tampered = format!("v1.{}A.{tag}", &payload[..payload.len() - 1]);
    let truncated = &h[..h.len() - 4];
    let forged = format!("v1.{payload}.{}", "A".repeat(43));
    let msg = ",\"message\":\"aGk=\"";
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        (
            "POST",
            format!("/keypair?{V}"),
            Some("{bad json".into()),
            422,
            "invalid request body",
        ),
        (
            "POST",
            format!("/keypair?{V}"),
            Some("{\"keyId\":5}".into()),
            422,
            "keyId",
        ),
        (
            "POST",
            format!("/keypair?{V}"),
            Some("{\"keyId\":\"x\",\"algorithm\":\"dsa\"}".into()),
            422,
            "algorithm",
        ),
        (
            "POST",
            format!("/keypair?{V}"),
            Some(String::new()),
            400,
            "missing request body",
        ),
        ("POST", format!("/keypair?{V}"), Some(big), 413, ""),
        (
            "POST",
            "/keypair".into(),
            Some("{\"keyId\":\"x\"}".into()),
            400,
            "api-version not specified",
        ),
        (
            "POST",
            "/keypair?api-version=1999-01-01".into(),
            Some("{\"keyId\":\"x\"}".into()),
            400,
            "invalid api-version",
        ),
        (
            "POST",
            format!("/keypair?{V}"),
            Some("{\"keyId\":\"../etc\"}".into()),
            400,
            "key id",
        ),
        (
            "POST",
            format!("/keypair?{V}"),
            Some("{\"keyId\":\"keyd/handle-key\"}".into()),
            403,
            "reserved",
        ),
        ("GET", format!("/keypair/nope?{V}"), None, 404, "not found"),
        ("GET", format!("/nothing?{V}"), None, 404, "not found"),
        (
            "DELETE",
            format!("/sign?{V}"),
            None,
            400,
            "method not allowed",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&tampered, msg)),
            400,
            "invalid key handle",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(truncated, msg)),
            400,
            "invalid key handle",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&forged, msg)),
            400,
            "invalid key handle",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body("", msg)),
            400,
            "invalid key handle",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&h, ",\"message\":\"!!not base64\"")),
            422,
            "message",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&h, ",\"digest\":\"aGk=\"")),
            400,
            "32-byte digest",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&h, "")),
            400,
            "exactly one of message and digest",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&mac, msg)),
            400,
            "cannot make ecdsa-sha256",
        ),
        (
            "POST",
            format!("/sign?{V}"),
            Some(sign_body(&h, ",\"message\":\"aGk=\",\"extra\":1")),
            422,
            "extra",
        ),
        (
            "POST",
            format!("/encrypt?{V}"),
            Some(format!("{{\"keyHandle\":\"{h}\",\"plaintext\":\"aGk=\"}}")),
            400,
            "cannot encrypt",
        ),
        (
            "POST",
            format!("/derive?{V}"),
            Some(format!("{{\"baseKeyHandle\":\"{h}\",\"label\":\"aGk=\"}}")),
            400,
            "only hmac-sha256 keys",
        ),
        (
            "POST",
            format!("/derive/export?{V}"),
            Some(format!("{{\"keyHandle\":\"{mac}\"}}")),
            400,
            "only derived keys",
        ),
        (
            "POST",
            format!("/import?{V}"),
            Some("{\"keyId\":\"i\",\"pem\":\"garbage\"}".into()),
            400,
            "not a PEM private key",
        ),
        (
            "POST",
            format!("/import?{V}"),
            Some("{\"keyId\":\"i\",\"uri\":\"file:///nonexistent.pem\"}".into()),
            400,
            "cannot read the key file",
        ),
        (
            "POST",
            format!("/import?{V}"),
            Some("{\"keyId\":\"i\",\"uri\":\"http://x/y\"}".into()),
            400,
            "file://",
        ),
        (
            "POST",
            format!("/import?{V}"),
            Some("{\"keyId\":\"i\"}".into()),
            400,
            "exactly one key source",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let (code, text) = keyd.curl(method, &path, body.as_deref(), None);
        assert_eq!(code, status, "{method} {path} {body:?}: {text}");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        let message = json["message"].as_str().expect("a message");
        assert!(
            message.contains(needle),
            "{method} {path}: {message:?} lacks {needle:?}"
        );
    }
    assert_eq!(keyd.store_files(), before, "bad requests changed the store");
    // and keyd still serves
    assert!(rt().block_on(keyd.client.list()).is_ok());
}

#[test]
fn callers_use_only_the_keys_their_uid_is_granted() {
    // The test runs as one uid; grant it only "mine/*" to see every refusal path.
    let keyd = Keyd::start("[[principal]]\nuid = \"self\"\nkeys = [\"mine/*\"]\n");
    let c = &keyd.client;
    rt().block_on(async {
        let mine = c
            .create_key("mine/mac", SymmetricUsage::HmacSha256)
            .await
            .unwrap();
        let refused = c.create_key_pair("theirs/k", None).await.unwrap_err();
        assert_eq!(refused.status().map(|s| s.as_u16()), Some(403), "{refused}");
        assert!(
            refused.to_string().contains("may not use key \"theirs/k\""),
            "{refused}"
        );
        assert_eq!(
            c.load_key_pair("theirs/k")
                .await
                .unwrap_err()
                .status()
                .map(|s| s.as_u16()),
            Some(403)
        );
        let child = c.derive(&mine.key_handle, b"label").await.unwrap();
        // export needs its own grant
        let e = c.export_derived(&child.key_handle).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
        assert_eq!(c.list().await.unwrap().len(), 1);
    });
}

#[test]
fn another_uid_cannot_use_a_handle_it_got_hold_of() {
    if !common::have("curl") {
        return;
    }
    // nobody (65534) may reach the socket through its group, but is granted only "nobody/*".
    let keyd = Keyd::start(
        "socket_group = 65534\n[[principal]]\nuid = \"self\"\nkeys = [\"*\"]\n[[principal]]\nuid = 65534\nkeys = [\"nobody/*\"]\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(keyd.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        keyd.dir.path().join("run"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let root_handle = handle_of(&keyd, "root/k");
    let (code, text) = keyd.curl(
        "POST",
        &format!("/sign?{V}"),
        Some(&sign_body(&root_handle, ",\"message\":\"aGk=\"")),
        Some(65534),
    );
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains("uid 65534 may not use key \\\"root/k\\\""),
        "{text}"
    );
    let (code, text) = keyd.curl(
        "POST",
        &format!("/keypair?{V}"),
        Some("{\"keyId\":\"nobody/k\"}"),
        Some(65534),
    );
    assert_eq!(code, 200, "{text}");
    let (code, _) = keyd.curl(
        "POST",
        &format!("/keypair?{V}"),
        Some("{\"keyId\":\"root/k2\"}"),
        Some(65534),
    );
    assert_eq!(code, 403);
}

#[test]
fn a_corrupted_key_file_is_reported_by_name_and_the_rest_keeps_working() {
    if common::soft_store_only() {
        return;
    }
    let mut keyd = Keyd::start(ALL_KEYS);
    let good = handle_of(&keyd, "good");
    let bad = handle_of(&keyd, "bad");
    keyd.stop();
    let keys = keyd.state().join("keys");
    let file = std::fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("bad-"))
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
    keyd.spawn().unwrap();
    let (code, text) = keyd.curl(
        "POST",
        &format!("/sign?{V}"),
        Some(&sign_body(&bad, ",\"message\":\"aGk=\"")),
        None,
    );
    assert_eq!(code, 500, "{text}");
    assert!(
        text.contains("stored key \\\"bad\\\" is corrupted"),
        "{text}"
    );
    let (code, _) = keyd.curl(
        "POST",
        &format!("/sign?{V}"),
        Some(&sign_body(&good, ",\"message\":\"aGk=\"")),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        keyd.log().contains("corrupted"),
        "the log names the problem"
    );
    // the damaged file was left for the operator, not replaced
    assert_eq!(std::fs::read(&file).unwrap().len(), bytes.len() - 7);
}

#[test]
fn an_unsafe_state_dir_is_refused_at_start_by_name() {
    if common::soft_store_only() {
        return;
    }
    let mut keyd = Keyd::start(ALL_KEYS);
    keyd.stop();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(keyd.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, log) = keyd.spawn().expect_err("keyd must refuse");
    assert_eq!(code, Some(1));
    assert!(
        log.contains(&keyd.state().display().to_string()) && log.contains("0777"),
        "{log}"
    );
}

#[test]
fn a_bad_config_exits_78_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyd.toml");
    std::fs::write(
        &file,
        "socket = \"s\"\nstate_dir = \"d\"\n[limits]\nmax_connections_per_uid = \"many\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgesec-keyd"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.display().to_string())
            && err.contains("limits.max_connections_per_uid")
            && err.contains(":4"),
        "{err}"
    );
}

#[test]
fn connections_per_uid_are_bounded_and_others_keep_being_served() {
    use std::io::{Read, Write};
    let keyd = Keyd::start(&format!(
        "[limits]\nmax_connections_per_uid = 4\n{ALL_KEYS}"
    ));
    let held: Vec<_> = (0..4)
        .map(|_| std::os::unix::net::UnixStream::connect(keyd.socket()).unwrap())
        .collect();
    // wait until keyd has accepted all four, then a fifth is refused with a clear answer
    let mut reply = String::new();
    for _ in 0..500 {
        let mut extra = std::os::unix::net::UnixStream::connect(keyd.socket()).unwrap();
        extra
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let _ = extra.write_all(format!("GET /keys?{V} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
        reply.clear();
        let _ = extra.read_to_string(&mut reply);
        if reply.starts_with("HTTP/1.1 503") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        reply.starts_with("HTTP/1.1 503") && reply.contains("too many connections"),
        "{reply}"
    );
    drop(held);
    // once the held connections close, the uid is served again
    let mut served = false;
    for _ in 0..500 {
        if rt().block_on(keyd.client.list()).is_ok() {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(served);
}
