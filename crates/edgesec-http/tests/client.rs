//! The client against a real server: keep-alive, concurrency, error mapping.

mod common;

use std::time::Duration;

use common::*;
use edgesec_http::{ClientError, ClientOptions, NO_BODY, ServerLimits, UdsClient};
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_connection() {
    let server = TestServer::start(ServerLimits::default());
    let client = UdsClient::new(&server.path);
    for _ in 0..50 {
        let _: WhoAmI = client.get_json("/whoami").await.unwrap();
    }
    assert_eq!(server.service.request_count(), 50);
    // One connection unless the machine stalled past the 5 s pool idle limit.
    assert!(
        server.service.connection_count() <= 2,
        "{}",
        server.service.connection_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_tasks_share_a_few_connections() {
    let server = TestServer::start(ServerLimits::default());
    let client = UdsClient::new(&server.path);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5 {
                let body = SignRequest {
                    key_id: format!("key-{i}-{j}"),
                    parameters: SignParameters {
                        digest: "q83v".into(),
                    },
                };
                let echoed: SignRequest = client
                    .post_json("/sign?api-version=2022-08-03", &body)
                    .await
                    .unwrap();
                assert_eq!(echoed, body);
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    }
    assert_eq!(server.service.request_count(), 64 * 5);
    // The pool never opens more than max_connections (8), which stays under
    // the server's default 32 per uid, so nobody got a 503.
    let connections = server.service.connection_count();
    assert!((1..=8).contains(&connections), "{connections}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_become_api_errors() {
    let server = TestServer::start(ServerLimits::default());
    let client = UdsClient::new(&server.path);
    let err = client.get_json::<WhoAmI>("/nope").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status, message } if *status == StatusCode::NOT_FOUND && message == "not found"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "404 Not Found: not found");

    let err = client
        .request_json::<SignRequest, _>(Method::POST, "/sign?api-version=2022-08-03", NO_BODY)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.to_string(), "400 Bad Request: missing request body");

    // request() itself returns any status as is.
    let (status, body) = client.request(Method::GET, "/nope", NO_BODY).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], br#"{"message":"not found"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_reaches_the_client_as_503() {
    let server = TestServer::start(ServerLimits {
        max_connections_per_uid: 1,
        ..ServerLimits::default()
    });
    // Hold the only slot with a connection that has been served once.
    let mut held = UnixStream::connect(&server.path).await.unwrap();
    held.write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_one_response(&mut held).await.status, 200);

    let client = UdsClient::new(&server.path);
    let err = client.get_json::<WhoAmI>("/whoami").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status, message }
            if *status == StatusCode::SERVICE_UNAVAILABLE && message == "too many connections for this user"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_socket_gives_a_readable_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let client = UdsClient::new(&path);
    let err = client.get_json::<WhoAmI>("/whoami").await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to {}: No such file or directory",
            path.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_after_server_closed_idle_connection_succeeds() {
    let server = TestServer::start(ServerLimits {
        header_read_timeout: Duration::from_millis(100),
        ..ServerLimits::default()
    });
    // A pool idle limit far above the server's, so the client would try to
    // reuse a connection the server has closed.
    let client = UdsClient::with_options(
        &server.path,
        ClientOptions {
            idle_timeout: Duration::from_secs(600),
            ..ClientOptions::default()
        },
    );
    let _: WhoAmI = client.get_json("/whoami").await.unwrap();
    // Not a speed assumption: if the server has not closed the connection
    // yet, the request below simply reuses it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: WhoAmI = client.get_json("/whoami").await.unwrap();
    let echoed: SignRequest = client
        .post_json(
            "/sign?api-version=2022-08-03",
            &SignRequest {
                key_id: "k".into(),
                parameters: SignParameters { digest: "d".into() },
            },
        )
        .await
        .unwrap();
    assert_eq!(echoed.key_id, "k");
}

#[tokio::test]
async fn bad_paths_are_rejected_before_connecting() {
    let client = UdsClient::new("/nonexistent/x.sock");
    let err = client.get_json::<WhoAmI>("whoami").await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidRequest(_)), "{err:?}");
}
