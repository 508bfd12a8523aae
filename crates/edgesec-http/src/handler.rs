//! The trait a service implements to answer requests.

use std::future::Future;

use crate::caller::Peer;
use crate::types::{Request, Response};

/// Answers one request.
///
/// Implement it on a struct that holds the service's state; [`serve`](crate::serve)
/// shares it between connections through an `Arc`. Every request gets the
/// [`Peer`] of its connection. Errors are responses too (see
/// [`ApiError::into_response`](crate::ApiError::into_response)).
///
/// ```no_run
/// use edgesec_http::{Handler, Peer, Request, Response, json_response};
/// use http::StatusCode;
///
/// struct Hello;
///
/// impl Handler for Hello {
///     async fn call(&self, peer: Peer, _req: Request) -> Response {
///         json_response(StatusCode::OK, &serde_json::json!({ "uid": peer.caller.uid }))
///     }
/// }
/// ```
///
/// A closure `Fn(Peer, Request) -> impl Future<Output = Response>` is a
/// handler as well.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, peer: Peer, req: Request) -> impl Future<Output = Response> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Peer, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    fn call(&self, peer: Peer, req: Request) -> impl Future<Output = Response> + Send {
        self(peer, req)
    }
}
