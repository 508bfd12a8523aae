//! The request and response types handlers work with.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use tokio::sync::mpsc;

/// A request whose body has already been read in full (within the limits).
pub type Request = http::Request<Bytes>;

/// A response body: in memory ([`full_body`]) or streamed ([`channel_body`]).
pub type Body = BoxBody<Bytes, Infallible>;

/// A response.
pub type Response = http::Response<Body>;

/// A body holding `bytes`.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body streamed from a channel: each message is sent as it arrives, and the body ends when
/// every sender is dropped. A client that goes away drops the receiver, so senders see
/// `send` fail and can stop.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    ChannelBody(rx).boxed()
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}
