//! Keep-alive connections for [`UdsClient`](crate::UdsClient).
//!
//! At most `max_connections` requests run at once (a semaphore); each takes an
//! idle connection if one is usable, else opens a new one, and hands it back
//! when its response has been read. Because a new connection is only opened
//! when none is idle, the pool never holds more than `max_connections`
//! connections, which keeps a busy client below the server's per-uid limit.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::client_error::ClientError;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

pub(crate) struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<IdleConn>>,
    permits: Semaphore,
    idle_timeout: Duration,
}

struct IdleConn {
    sender: Sender,
    since: Instant,
}

/// A connection taken from the pool, with the permit that allowed it.
pub(crate) struct Checkout<'a> {
    pub(crate) sender: Sender,
    /// Whether the connection had served a request before (so may have been
    /// closed by the server meanwhile).
    pub(crate) reused: bool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(crate) fn new(path: PathBuf, max_connections: usize, idle_timeout: Duration) -> Self {
        Pool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
            idle_timeout,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for a permit, then returns an idle connection or a new one.
    pub(crate) async fn checkout(&self) -> Result<Checkout<'_>, ClientError> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool never closes its semaphore");
        while let Some(mut sender) = self.take_idle() {
            // `ready` waits until the connection task has finished with the
            // previous exchange; it fails if the server has closed it.
            if sender.ready().await.is_ok() {
                return Ok(Checkout {
                    sender,
                    reused: true,
                    _permit: permit,
                });
            }
        }
        Ok(Checkout {
            sender: self.connect().await?,
            reused: false,
            _permit: permit,
        })
    }

    /// Opens a new connection, bypassing the idle list (but not the permit,
    /// which the caller still holds in its `Checkout`).
    pub(crate) async fn reconnect(&self, checkout: &mut Checkout<'_>) -> Result<(), ClientError> {
        checkout.sender = self.connect().await?;
        checkout.reused = false;
        Ok(())
    }

    /// Returns a connection after its response was read in full.
    pub(crate) fn checkin(&self, checkout: Checkout<'_>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let idle_timeout = self.idle_timeout;
        idle.retain(|c| c.since.elapsed() < idle_timeout && !c.sender.is_closed());
        if !checkout.sender.is_closed() {
            idle.push(IdleConn {
                sender: checkout.sender,
                since: Instant::now(),
            });
        }
    }

    /// Most recently used first; stale or closed ones are dropped on the way.
    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            // Servers close idle connections (ours after `header_read_timeout`);
            // not reusing old ones avoids racing with that close.
            if conn.since.elapsed() < self.idle_timeout && !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.path.clone(),
                    source,
                })?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!("client connection ended: {err}");
            }
        });
        Ok(sender)
    }
}
