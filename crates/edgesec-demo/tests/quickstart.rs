//! The quickstart end to end: the real edgesecd starts keyd and edgesec-agent, the agent starts
//! `demo-server` and `demo-client` from `examples/quickstart/deployment.json`, and the client's
//! logs (read through the management API) show a mutual-TLS exchange. The certificates the
//! modules got are then checked independently with `openssl verify`.

mod common;

use std::time::Duration;

use common::{
    Edgesecd, bin_dir, copy_quickstart, free_port, have_tool, openssl_verify, test_deployment,
};
use serde_json::{Value, json};

const CLIENT_IDENTITY: &str = "azureiot://localhost/devices/quickstart-device/modules/demo-client";
const WAIT: Duration = Duration::from_secs(120);

#[test]
fn the_quickstart_shows_mutual_tls_between_two_modules() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_quickstart(dir);
    let port = free_port();
    test_deployment(dir, port);
    let mut daemon = Edgesecd::start(&bins, dir);

    // The server got its certificate and listens on the port.
    let server_line = daemon.wait_for("the demo-server to listen", WAIT, |d| {
        d.logs("demo-server")
            .into_iter()
            .find(|l| l.contains("demo-server: got server certificate CN=localhost"))
    });
    assert!(
        server_line.contains(&format!("listening on 127.0.0.1:{port}")),
        "{server_line}"
    );
    assert!(server_line.contains("valid until "), "{server_line}");

    // The client completed a mutual-TLS exchange, and the server saw its identity.
    let ok =
        format!("demo-client: mutual TLS with 127.0.0.1:{port} OK: server name localhost verified");
    let client_line = daemon.wait_for(
        "a successful exchange in the demo-client's logs",
        WAIT,
        |d| d.logs("demo-client").into_iter().find(|l| l.contains(&ok)),
    );
    for part in [
        "peer chain CN=localhost <- CN=edgesec edge CA <- CN=edgesec device root CA (trust bundle)",
        &format!("server saw client identity {CLIENT_IDENTITY}"),
        &format!("reply: \"hello {CLIENT_IDENTITY}: ping from demo-client at "),
    ] {
        assert!(client_line.contains(part), "{part:?} not in {client_line}");
    }
    let served = daemon.wait_for("the exchange in the demo-server's logs", WAIT, |d| {
        d.logs("demo-server")
            .into_iter()
            .find(|l| l.contains("demo-server: mutual TLS with 127.0.0.1:") && l.contains(" OK: "))
    });
    assert!(
        served.contains(&format!(
            "client identity {CLIENT_IDENTITY} verified against the trust bundle; said \"ping from demo-client at "
        )),
        "{served}"
    );

    // A client that expects another server name fails, says why, and exits non-zero.
    let wrong = daemon.wait_for("demo-wrongname to give up", WAIT, |d| {
        let m = d.module("demo-wrongname")?;
        (m["status"]["runtimeStatus"]["status"] == "failed").then_some(m)
    });
    assert_eq!(wrong["status"]["exitStatus"]["statusCode"], "1", "{wrong}");
    let logs = daemon.logs("demo-wrongname").join("\n");
    assert!(
        logs.contains("failed: TLS handshake failed: invalid peer certificate: certificate not valid for name \"wrong.example\""),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "no successful mutual TLS exchange with 127.0.0.1:{port} within 5s"
        )),
        "{logs}"
    );

    let status = daemon.terminate(Duration::from_secs(60));
    let log = std::fs::read_to_string(dir.join("edgesecd.log")).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "edgesecd did not exit with 0 after SIGTERM\n{log}"
    );

    // Independently: the chains the modules got verify with OpenSSL, for their purposes only.
    if !have_tool("openssl") {
        return;
    }
    let server = dir.join("dump/server");
    let client = dir.join("dump/client");
    for (d, prefix, args, want) in [
        (
            &server,
            "server",
            &["-purpose", "sslserver", "-verify_hostname", "localhost"][..],
            true,
        ),
        (
            &server,
            "server",
            &["-purpose", "sslserver", "-verify_hostname", "demo-server"],
            true,
        ),
        (
            &server,
            "server",
            &["-purpose", "sslserver", "-verify_hostname", "wrong.example"],
            false,
        ),
        (&server, "server", &["-purpose", "sslclient"], false),
        (&client, "identity", &["-purpose", "sslclient"], true),
        (&client, "identity", &["-purpose", "sslserver"], false),
    ] {
        let (ok, text) = openssl_verify(d, prefix, args);
        assert_eq!(ok, want, "openssl verify {prefix} {args:?}: {text}");
        if want {
            assert!(text.trim_end().ends_with(": OK"), "{text}");
        }
    }
    // Both got the same trust bundle, with no private key written anywhere.
    assert_eq!(
        std::fs::read(server.join("bundle.pem")).unwrap(),
        std::fs::read(client.join("bundle.pem")).unwrap()
    );
    for d in [&server, &client] {
        for e in std::fs::read_dir(d).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(!text.contains("PRIVATE KEY"));
        }
    }
}

#[test]
fn the_quickstart_deployment_runs_both_demo_modules() {
    let text = std::fs::read_to_string(common::quickstart_dir().join("deployment.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let server = &d["modules"]["demo-server"];
    let client = &d["modules"]["demo-client"];
    assert_eq!(server["type"], "process");
    assert_eq!(server["startupOrder"], 1);
    assert_eq!(server["settings"]["command"], "edgesec-demo");
    assert_eq!(
        server["settings"]["args"],
        json!([
            "server",
            "--listen",
            "127.0.0.1:8443",
            "--common-name",
            "localhost"
        ])
    );
    assert_eq!(client["startupOrder"], 2);
    assert_eq!(client["settings"]["command"], "edgesec-demo");
    assert_eq!(
        client["settings"]["args"],
        json!([
            "client",
            "--connect",
            "127.0.0.1:8443",
            "--server-name",
            "localhost",
            "--every",
            "10s"
        ])
    );
}
