//! The TCP listener: TLS, HTTP/1.1, bounded connections, and pause/resume
//! on the same port.
//!
//! The accept loop owns the listener and every connection task. Pausing
//! stops the loop, which drops the listener and aborts the connections, and
//! waits until that is done; resuming binds the same port again.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::router;
use crate::state::SimState;

const MAX_CONNECTIONS: usize = 256;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// How long pause waits for the accept loop to let go of the port.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long resume keeps trying to bind the old port.
const REBIND_ATTEMPTS: u32 = 100;
const REBIND_PAUSE: Duration = Duration::from_millis(100);

pub(crate) struct Server {
    port: u16,
    runtime: Handle,
    context: Arc<Context>,
    running: Mutex<Option<Running>>,
}

/// What every connection needs.
struct Context {
    state: Arc<SimState>,
    acceptor: TlsAcceptor,
}

/// A live accept loop: a way to stop it and to learn that it stopped.
struct Running {
    stop: oneshot::Sender<()>,
    stopped: mpsc::Receiver<()>,
}

impl Server {
    /// Binds `127.0.0.1:port` (0 for any) and starts accepting.
    pub fn start(
        runtime: Handle,
        state: Arc<SimState>,
        tls: Arc<ServerConfig>,
        listener: StdListener,
    ) -> Result<Server, String> {
        let port = listener
            .local_addr()
            .map_err(|e| format!("listener address: {e}"))?
            .port();
        let context = Arc::new(Context {
            state,
            acceptor: TlsAcceptor::from(tls),
        });
        let server = Server {
            port,
            runtime,
            context,
            running: Mutex::new(None),
        };
        server.accept_on(listener)?;
        Ok(server)
    }

    /// A listener on 127.0.0.1 at `port` (0: any free port).
    pub fn bind(port: u16) -> std::io::Result<StdListener> {
        StdListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting and closes every open connection; returns when the
    /// port is closed.
    pub fn pause(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            let _ = running.stop.send(());
            // An error means the loop is gone already, which is what we want.
            let _ = running.stopped.recv_timeout(STOP_TIMEOUT);
        }
    }

    /// Accepts again on the same port. Panics when the port cannot be had
    /// back, since the test cannot go on meaningfully.
    pub fn resume(&self) {
        if self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let mut last_error = None;
        for _ in 0..REBIND_ATTEMPTS {
            match Server::bind(self.port) {
                Ok(listener) => {
                    if let Err(e) = self.accept_on(listener) {
                        panic!("cloudsim: cannot accept on port {} again: {e}", self.port);
                    }
                    return;
                }
                Err(e) => last_error = Some(e),
            }
            std::thread::sleep(REBIND_PAUSE);
        }
        panic!(
            "cloudsim: cannot bind port {} again: {last_error:?}",
            self.port
        );
    }

    fn accept_on(&self, listener: StdListener) -> Result<(), String> {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("non-blocking listener: {e}"))?;
        let listener = {
            let _entered = self.runtime.enter();
            TcpListener::from_std(listener).map_err(|e| format!("async listener: {e}"))?
        };
        let (stop, stop_rx) = oneshot::channel();
        let (stopped_tx, stopped) = mpsc::channel();
        self.runtime.spawn(accept_loop(
            listener,
            Arc::clone(&self.context),
            stop_rx,
            stopped_tx,
        ));
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running { stop, stopped });
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    mut stop: oneshot::Receiver<()>,
    stopped: mpsc::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    connections.spawn(serve_connection(stream, Arc::clone(&context)));
                }
                Ok(_) => {} // over the limit: dropping the stream closes it
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
    let _ = stopped.send(());
}

async fn serve_connection(stream: TcpStream, context: Arc<Context>) {
    let _ = stream.set_nodelay(true);
    let tls =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, context.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            _ => return, // a failed or slow handshake has nobody to answer to
        };
    let peer_certs = Arc::new(
        tls.get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default(),
    );
    let state = Arc::clone(&context.state);
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        let peer_certs = Arc::clone(&peer_certs);
        async move { Ok::<_, Infallible>(router::handle(state, peer_certs, request).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BUFFER)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
