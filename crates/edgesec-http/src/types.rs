//! The request and response types handlers work with.

use bytes::Bytes;
use http_body_util::Full;

/// A request whose body has already been read in full (within the limits).
pub type Request = http::Request<Bytes>;

/// A response with an in-memory body.
pub type Response = http::Response<Full<Bytes>>;
