//! The server over a real socket: identity, limits, errors, shutdown.

mod common;

use std::time::Duration;

use common::*;
use edgesec_http::{ServerLimits, UdsClient};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

const SIGN: &str = "/sign?api-version=2022-08-03";
const GOOD_BODY: &str = r#"{"keyId":"k1","parameters":{"digest":"q83v"}}"#;

fn small_body_limits() -> ServerLimits {
    ServerLimits {
        max_body_bytes: 1024,
        ..ServerLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_is_this_process() {
    let server = TestServer::start(ServerLimits::default());
    let client = UdsClient::new(&server.path);
    let me: WhoAmI = client.get_json("/whoami").await.unwrap();
    // SAFETY: these libc calls only read the calling process's ids.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(me.pid, Some(std::process::id() as i32));
    assert_eq!(me.uid, uid);
    assert_eq!(me.gid, gid);
    // SO_PEERPIDFD needs Linux 6.5; where it is available it must name us.
    if kernel_at_least(6, 5) {
        assert_eq!(me.pidfd_pid, Some(std::process::id() as i32));
    }
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    version >= (major, minor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_json_body_is_accepted() {
    let server = TestServer::start(small_body_limits());
    let resp = raw_exchange(
        &server.path,
        &post(SIGN, Some("application/json"), GOOD_BODY),
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    let echoed: SignRequest = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(echoed.parameters.digest, "q83v");

    // A body of exactly the limit is still fine.
    let padded = format!("{GOOD_BODY:<1024}");
    assert_eq!(padded.len(), 1024);
    let resp = raw_exchange(&server.path, &post(SIGN, None, &padded)).await;
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_oversize_body_is_refused_without_reading_it() {
    let server = TestServer::start(ServerLimits {
        // Long enough that the test would hang if the server waited for the body.
        request_timeout: Duration::from_secs(600),
        ..small_body_limits()
    });
    // Headers only; the announced megabyte never comes.
    let head = format!(
        "POST {SIGN} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    );
    let resp = raw_exchange(&server.path, head.as_bytes()).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(message(&resp), "request body larger than 1024 bytes");
    assert_eq!(resp.header("connection").as_deref(), Some("close"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_oversize_body_is_refused() {
    let server = TestServer::start(small_body_limits());
    let mut request =
        format!("POST {SIGN} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..4 {
        request.extend_from_slice(format!("200\r\n{}\r\n", " ".repeat(0x200)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let resp = raw_exchange(&server.path, &request).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(message(&resp), "request body larger than 1024 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_gets_408() {
    let server = TestServer::start(ServerLimits {
        request_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    });
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    stream
        .write_all(
            format!("POST {SIGN} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n{{\"a")
                .as_bytes(),
        )
        .await
        .unwrap();
    // Keep the connection open without sending the rest.
    let bytes = read_until_close(&mut stream).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains(r#"{"message":"request body not received within 0.2 s"}"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_errors() {
    let server = TestServer::start(ServerLimits::default());
    let cases: &[(Option<&str>, &str, u16, &str)] = &[
        (Some("application/json"), "", 400, "missing request body"),
        (
            None,
            "{\"keyId\":",
            422,
            "invalid request body at \"keyId\": EOF while parsing",
        ),
        (
            None,
            "not json",
            422,
            "invalid request body: expected ident",
        ),
        (
            None,
            r#"{"keyId":"k","parameters":{"digest":42}}"#,
            422,
            "invalid request body at \"parameters.digest\": invalid type: integer `42`, expected a string",
        ),
        (
            Some("text/plain"),
            GOOD_BODY,
            415,
            "request body must be application/json",
        ),
        (Some("application/json; charset=utf-8"), GOOD_BODY, 200, ""),
    ];
    for (content_type, body, status, expected) in cases {
        let resp = raw_exchange(&server.path, &post(SIGN, *content_type, body)).await;
        assert_eq!(resp.status, *status, "{body:?}: {resp:?}");
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json")
        );
        if *status != 200 {
            let msg = message(&resp);
            assert!(msg.starts_with(expected), "{body:?}: {msg}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_errors() {
    let server = TestServer::start(ServerLimits::default());
    let resp = raw_exchange(&server.path, &post("/sign", None, GOOD_BODY)).await;
    assert_eq!(
        (resp.status, message(&resp).as_str()),
        (400, "api-version not specified")
    );
    let resp = raw_exchange(
        &server.path,
        &post("/sign?api-version=1999-01-01", None, GOOD_BODY),
    )
    .await;
    assert_eq!(
        (resp.status, message(&resp).as_str()),
        (400, "invalid api-version \"1999-01-01\"")
    );
    let resp = raw_exchange(
        &server.path,
        &post("/sign?api-version=2020%2D07%2D07", None, GOOD_BODY),
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_segments_over_the_wire() {
    let server = TestServer::start(ServerLimits::default());
    let resp = raw_exchange(&server.path, &get("/segments/%24edgeHub/genid/1/sign")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let segments: Vec<String> = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(segments, ["segments", "$edgeHub", "genid", "1", "sign"]);

    for bad in [
        "/segments/..",
        "/segments/../whoami",
        "/segments/a%2Fb",
        "/segments/%2e%2e",
        "/segments/a%00",
    ] {
        let resp = raw_exchange(&server.path, &get(bad)).await;
        assert_eq!(resp.status, 400, "{bad}: {resp:?}");
        assert!(message(&resp).starts_with("invalid path segment"), "{bad}");
    }
    let resp = raw_exchange(&server.path, &get("/nothing/here")).await;
    assert_eq!((resp.status, message(&resp).as_str()), (404, "not found"));
    let resp = raw_exchange(&server.path, &get("/sign")).await;
    assert_eq!(
        (resp.status, message(&resp).as_str()),
        (400, "method not allowed")
    );
}

/// Opens a connection and completes one request on it, so the server has
/// certainly accepted and counted it.
async fn open_counted_connection(path: &std::path::Path) -> UnixStream {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let resp = read_one_response(&mut stream).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    stream
}

/// Retries a fresh request until it is served: the server gives a slot back
/// only after it has noticed a close, which happens asynchronously.
async fn wait_until_served(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let resp = raw_exchange(path, &get("/whoami")).await;
        if resp.status == 200 {
            return;
        }
        assert_eq!(resp.status, 503, "{resp:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_per_uid() {
    const LIMIT: usize = 3;
    let server = TestServer::start(ServerLimits {
        max_connections_per_uid: LIMIT,
        ..ServerLimits::default()
    });
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        open.push(open_counted_connection(&server.path).await);
    }

    let resp = raw_exchange(&server.path, &get("/whoami")).await;
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(
        resp.body,
        r#"{"message":"too many connections for this user"}"#
    );
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );

    // The connections we hold still work while others are refused.
    let mut first = open.remove(0);
    first
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut first).await.status, 200);

    drop(first);
    wait_until_served(&server.path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    // hyper 1.13 restarts its header-read timer while waiting for the next
    // request on a kept-alive connection, so header_read_timeout doubles as
    // the idle timeout. This checks that, and that the slot is given back.
    let server = TestServer::start(ServerLimits {
        max_connections_per_uid: 1,
        header_read_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    });
    let mut stream = open_counted_connection(&server.path).await;
    let rest = read_until_close(&mut stream).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    wait_until_served(&server.path).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed() {
    let server = TestServer::start(ServerLimits {
        header_read_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    });
    let mut stream = UnixStream::connect(&server.path).await.unwrap();
    assert!(read_until_close(&mut stream).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut server = TestServer::start(ServerLimits::default());
    let client = UdsClient::new(&server.path);
    let in_flight = tokio::spawn(async move { client.get_json::<String>("/slow").await });
    tokio::time::timeout(PATIENCE, server.service.entered.notified())
        .await
        .expect("request never reached the handler");

    let serving = server.shutdown();
    // The listener goes away at once...
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while UnixStream::connect(&server.path).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...but the request in progress is answered, and then serve returns.
    server.service.release.notify_one();
    let answer = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.unwrap(), "released");
    tokio::time::timeout(PATIENCE, serving)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_wait_is_bounded() {
    let mut server = TestServer::start(ServerLimits {
        shutdown_grace: Duration::from_millis(100),
        ..ServerLimits::default()
    });
    let client = UdsClient::new(&server.path);
    let stuck = tokio::spawn(async move { client.get_json::<String>("/slow").await });
    tokio::time::timeout(PATIENCE, server.service.entered.notified())
        .await
        .expect("request never reached the handler");
    // The handler is never released, yet serve returns and the client sees
    // the connection dropped.
    let serving = server.shutdown();
    tokio::time::timeout(PATIENCE, serving)
        .await
        .unwrap()
        .unwrap();
    let result = tokio::time::timeout(PATIENCE, stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "{result:?}");
}
