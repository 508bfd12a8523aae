//! HTTP/1.1 over Unix sockets for edgesec's services and CLI.
//!
//! Server side: [`bind_unix_socket`] creates the socket file, [`serve`] runs
//! the accept loop, and a [`Handler`] answers each [`Request`] (body already
//! read within [`ServerLimits`]) knowing the kernel-reported [`Peer`]. Helpers
//! give the common answers: [`ApiError`], [`json_response`],
//! [`parse_json_body`], [`api_version`], [`path_segments`].
//!
//! Client side: [`UdsClient`] keeps a small pool of keep-alive connections and
//! maps error answers to [`ClientError::Api`].
//!
//! Every error answer is `{"message": "..."}` with `Content-Type:
//! application/json`, as in the IoT Edge daemon's APIs.
//!
//! ```no_run
//! use std::sync::Arc;
//! use edgesec_http::{
//!     ApiError, Peer, Request, Response, ServerLimits, UdsClient, api_version,
//!     bind_unix_socket, json_response, path_segments, serve,
//! };
//! use http::{Method, StatusCode};
//!
//! async fn route(peer: Peer, req: Request) -> Result<Response, ApiError> {
//!     api_version(&req, &["2022-08-03"])?;
//!     let segments = path_segments(req.uri().path())?;
//!     match (req.method(), segments.as_slice()) {
//!         (&Method::GET, [who]) if who == "whoami" => {
//!             Ok(json_response(StatusCode::OK, &peer.caller.uid))
//!         }
//!         _ => Err(ApiError::not_found()),
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = bind_unix_socket("/run/edgesec/demo.sock".as_ref(), 0o660, None)?;
//! let handler = Arc::new(|peer: Peer, req: Request| async move {
//!     route(peer, req).await.unwrap_or_else(ApiError::into_response)
//! });
//! tokio::spawn(serve(listener, ServerLimits::default(), handler, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }));
//!
//! let client = UdsClient::new("/run/edgesec/demo.sock");
//! let uid: u32 = client.get_json("/whoami?api-version=2022-08-03").await.unwrap();
//! # Ok(()) }
//! ```

mod bind;
mod body;
mod caller;
mod client;
mod client_error;
mod client_pool;
mod conn_limit;
mod error;
mod handler;
mod json;
mod limits;
mod path;
mod query;
mod reject;
mod request_id;
mod server;
mod types;
mod unix_uri;

pub use bind::{MAX_SOCKET_PATH, bind_unix_socket};
pub use caller::{Caller, ConnectionMemo, Peer, peer_caller, peer_pidfd};
pub use client::{ClientOptions, NO_BODY, UdsClient};
pub use client_error::ClientError;
pub use error::ApiError;
pub use handler::Handler;
pub use json::{json_response, parse_json_body};
pub use limits::ServerLimits;
pub use path::{encode_path_segment, path_segments};
pub use query::{api_version, query_param};
pub use request_id::request_id;
pub use server::serve;
pub use types::{Body, Request, Response, channel_body, full_body};
pub use unix_uri::{UnixUriError, parse_unix_uri, unix_uri};
