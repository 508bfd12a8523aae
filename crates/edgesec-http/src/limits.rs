//! Resource limits for one server.

use std::time::Duration;

/// Limits applied by [`serve`](crate::serve) to every connection and request.
///
/// There is deliberately no separate idle timeout for keep-alive connections:
/// hyper 1.13 starts its header-read timer whenever it waits for the *next*
/// request head, including the gap after a response, so `header_read_timeout`
/// also closes idle keep-alive connections and frees their per-uid slot. The
/// test `idle_keep_alive_connection_is_closed` checks this.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Largest request body accepted; bigger ones get 413. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Open connections allowed per caller uid; more get 503. Default 32.
    pub max_connections_per_uid: usize,
    /// Time allowed to receive a request body; slower ones get 408. Default 30 s.
    pub request_timeout: Duration,
    /// Time allowed for a request head to arrive, counted from connection start
    /// or from the end of the previous response. Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request head (start line plus headers); bigger ones get 431.
    /// Also caps hyper's read buffer (`max_buf_size`, which hyper does not allow
    /// below 8 KiB). Default 16 KiB.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests may take before their
    /// connections are dropped. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_body_bytes: 64 * 1024,
            max_connections_per_uid: 32,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
