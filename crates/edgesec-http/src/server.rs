//! The accept loop and per-connection tasks.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tracing::{debug, warn};

use crate::body::collect_request;
use crate::caller::{Peer, peer_caller, peer_pidfd};
use crate::conn_limit::{ConnectionCounter, ConnectionSlot};
use crate::handler::Handler;
use crate::limits::ServerLimits;
use crate::reject::{MAX_REFUSALS_IN_PROGRESS, refuse_overloaded};
use crate::types::Response;

/// hyper panics if `max_buf_size` is set below this.
const MIN_HYPER_BUF: usize = 8192;
/// Pause after a failed `accept()` (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves HTTP/1.1 on `listener` until `shutdown` completes.
///
/// For each accepted connection the caller's credentials are read first
/// (`SO_PEERCRED`, then `SO_PEERPIDFD`); a uid already holding
/// `limits.max_connections_per_uid` connections gets a `503` and is closed.
/// Every connection runs in its own task with keep-alive; bodies are read
/// within [`ServerLimits`] before `handler` sees the request. A connection
/// that sends no request head for `limits.header_read_timeout` (at the start,
/// or idle between keep-alive requests) is closed, which frees its slot.
///
/// When `shutdown` completes the listener is closed at once, open connections
/// finish their current request and close, and after `limits.shutdown_grace`
/// any that remain are dropped. Returns when all connections are gone.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    limits: ServerLimits,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = limits.shutdown_grace;
    let acceptor = Acceptor {
        counter: ConnectionCounter::new(limits.max_connections_per_uid),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_PROGRESS)),
        limits: Arc::new(limits),
        handler,
        stop: stop_rx,
    };
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_task_end(done),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => acceptor.start(stream, &mut tasks),
                Err(err) => {
                    warn!("cannot accept connection: {err}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }

    // New clients now get "connection refused" instead of waiting in the backlog.
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            log_task_end(done);
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!(
            connections = tasks.len(),
            "shutdown grace period over; dropping remaining connections"
        );
        tasks.shutdown().await;
    }
}

/// What the accept loop needs to start a connection task.
struct Acceptor<H> {
    counter: Arc<ConnectionCounter>,
    refusals: Arc<Semaphore>,
    limits: Arc<ServerLimits>,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> Acceptor<H> {
    /// Identifies the caller, then starts serving or refusing the connection.
    fn start(&self, stream: UnixStream, tasks: &mut JoinSet<()>) {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let caller = match peer_caller(&stream) {
            Ok(caller) => caller,
            Err(err) => {
                warn!("cannot read peer credentials, closing connection: {err}");
                return;
            }
        };
        let Some(slot) = self.counter.try_acquire(caller.uid) else {
            // At most one line a second, however fast connections are refused.
            static REFUSED: AtomicU64 = AtomicU64::new(0);
            static LAST_WARNED: std::sync::Mutex<Option<std::time::Instant>> =
                std::sync::Mutex::new(None);
            let refused = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = LAST_WARNED.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                REFUSED.store(0, Ordering::Relaxed);
                warn!(
                    uid = caller.uid,
                    pid = caller.pid,
                    refused,
                    "too many connections for this user; refusing connections"
                );
            }
            drop(last);
            match Arc::clone(&self.refusals).try_acquire_owned() {
                Ok(permit) => {
                    tasks.spawn(async move {
                        refuse_overloaded(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => debug!("too many refusals in progress; closing without answer"),
            }
            return;
        };
        let peer = Peer {
            caller,
            pidfd: peer_pidfd(&stream).map(Arc::new),
            connection_id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            memo: Default::default(),
        };
        tasks.spawn(run_connection(
            stream,
            peer,
            slot,
            Arc::clone(&self.limits),
            Arc::clone(&self.handler),
            self.stop.clone(),
        ));
    }
}

async fn run_connection<H: Handler>(
    stream: UnixStream,
    peer: Peer,
    slot: ConnectionSlot,
    limits: Arc<ServerLimits>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) {
    // Held until the connection is closed, then gives the uid's slot back.
    let _slot = slot;
    let connection_id = peer.connection_id;
    debug!(
        connection_id,
        pid = peer.caller.pid,
        uid = peer.caller.uid,
        "connection accepted"
    );

    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_HYPER_BUF));

    let service = service_fn(move |req: http::Request<Incoming>| {
        let handler = Arc::clone(&handler);
        let limits = Arc::clone(&limits);
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(answer(&*handler, peer, req, &limits).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);

    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop_requested(&mut stop) => {
            // Finishes the request in progress, if any, then closes.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) => debug!(connection_id, "connection closed"),
        Err(err) => debug!(connection_id, "connection closed: {err}"),
    }
}

async fn answer<H: Handler>(
    handler: &H,
    peer: Peer,
    req: http::Request<Incoming>,
    limits: &ServerLimits,
) -> Response {
    let connection_id = peer.connection_id;
    debug!(connection_id, method = %req.method(), uri = %req.uri(), "<-- request");
    let response = match collect_request(req, limits.max_body_bytes, limits.request_timeout).await {
        Ok(req) => handler.call(peer, req).await,
        Err(response) => response,
    };
    debug!(
        connection_id,
        status = response.status().as_u16(),
        "--> response"
    );
    response
}

/// Completes once `serve` asks connections to stop (or has gone away).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send, so it must not outlive this fn.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn log_task_end(done: Result<(), JoinError>) {
    if done.is_err_and(|err| err.is_panic()) {
        warn!("connection task panicked");
    }
}
