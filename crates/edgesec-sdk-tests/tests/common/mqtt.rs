//! A stand-in for edgeHub's MQTT endpoint: TLS (1.2 and 1.3) on 127.0.0.1:8883 with a given
//! certificate, reads the MQTT 3.1.1 CONNECT packet, records it and answers CONNACK "accepted".
//! Every connection's outcome is sent to the test as an [`Event`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// The port the Python SDK always uses for MQTT over TLS (no setting changes it).
pub const PORT: u16 = 8883;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: String,
    pub level: u8,
    pub flags: u8,
    pub keep_alive: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug)]
pub enum Event {
    /// The TLS handshake failed (for a client that refused our certificate, its alert).
    HandshakeFailed(String),
    /// A CONNECT arrived over TLS `tls` and was answered with CONNACK.
    Connected { tls: String, connect: Connect },
    /// TLS worked but what came was not a CONNECT we could parse.
    BadConnect(String),
}

pub struct Listener {
    task: tokio::task::JoinHandle<()>,
    events: mpsc::UnboundedReceiver<Event>,
}

/// Serializes the users of port 8883 on this machine: two runs of the test at once would take
/// turns on the port between their phases and each see the other's server.
pub struct PortLock(std::fs::File);

impl PortLock {
    pub async fn acquire() -> PortLock {
        let path = std::env::temp_dir().join(format!("edgesec-sdk-tests-port-{PORT}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path))
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let deadline = Instant::now() + Duration::from_secs(300);
        while file.try_lock().is_err() {
            assert!(
                Instant::now() < deadline,
                "another process has held {} for 5 minutes",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        PortLock(file)
    }
}

/// A TLS server config from a PEM chain (leaf first) and a PEM private key.
pub fn tls_config(chain_pem: &str, key_pem: &str) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain PEM");
    assert!(!chain.is_empty(), "no certificate in the chain PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config")
}

impl Listener {
    /// Listens on 127.0.0.1:8883, waiting up to 30 s for the port if another listener (an
    /// earlier phase of this test) is still closing.
    pub async fn start(config: rustls::ServerConfig) -> Listener {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tcp = loop {
            match TcpListener::bind(("127.0.0.1", PORT)).await {
                Ok(l) => break l,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "cannot listen on 127.0.0.1:{PORT}: {e}. The Python SDK always connects to port {PORT} of \
                     IOTEDGE_GATEWAYHOSTNAME, so this test needs that port free"
                ),
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = tcp.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(60), serve(acceptor, stream, tx))
                            .await;
                });
            }
        });
        Listener { task, events }
    }

    /// The next connection's outcome.
    pub async fn next_event(&mut self, secs: u64) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs(secs), self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every outcome so far, without waiting.
    pub fn drain(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// Stops listening and frees the port.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn serve(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    events: mpsc::UnboundedSender<Event>,
) {
    match accept_connect(acceptor, stream).await {
        Err(failed) => {
            let _ = events.send(failed);
        }
        Ok((mut tls, connected)) => {
            let _ = events.send(connected);
            // Keep the session until the client disconnects, answering PINGREQ.
            while let Ok((header, _)) = read_packet(&mut tls).await {
                match header >> 4 {
                    12 => {
                        let _ = tls.write_all(&[0xd0, 0x00]).await;
                    }
                    14 => break,
                    _ => {}
                }
            }
        }
    }
}

/// The TLS handshake, the CONNECT packet and our CONNACK.
async fn accept_connect(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> Result<(TlsStream<TcpStream>, Event), Event> {
    let limit = Duration::from_secs(20);
    let mut tls = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Event::HandshakeFailed(e.to_string())),
        Err(_) => return Err(Event::HandshakeFailed("timed out".into())),
    };
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let (header, body) = tokio::time::timeout(limit, read_packet(&mut tls))
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
        .map_err(Event::BadConnect)?;
    if header != 0x10 {
        let why = format!("first packet has header byte {header:#04x}, not CONNECT");
        return Err(Event::BadConnect(why));
    }
    let connect = parse_connect(&body).map_err(Event::BadConnect)?;
    // CONNACK: session present 0, return code 0 (accepted)
    tls.write_all(&[0x20, 0x02, 0x00, 0x00])
        .await
        .map_err(|e| Event::BadConnect(format!("cannot send CONNACK: {e}")))?;
    let _ = tls.flush().await;
    Ok((
        tls,
        Event::Connected {
            tls: version,
            connect,
        },
    ))
}

/// One MQTT packet: the header byte and the body (the remaining length is a 1 to 4 byte varint).
async fn read_packet(r: &mut (impl AsyncRead + Unpin)) -> Result<(u8, Vec<u8>), String> {
    let header = r
        .read_u8()
        .await
        .map_err(|e| format!("reading the header: {e}"))?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = r
            .read_u8()
            .await
            .map_err(|e| format!("reading the length: {e}"))?;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err("remaining length longer than 4 bytes".into());
        }
    }
    if len > 64 * 1024 {
        return Err(format!("packet of {len} bytes is too large for a CONNECT"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| format!("reading {len} bytes: {e}"))?;
    Ok((header, body))
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("CONNECT ends early (wanted {n} more bytes)"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| format!("string is not UTF-8: {e}"))
    }
}

/// The variable header and payload of CONNECT (MQTT 3.1.1 §3.1).
pub fn parse_connect(body: &[u8]) -> Result<Connect, String> {
    let mut c = Cursor(body);
    let protocol = c.string()?;
    let level = c.u8()?;
    let flags = c.u8()?;
    let keep_alive = c.u16()?;
    let client_id = c.string()?;
    if flags & 0x04 != 0 {
        c.string()?; // will topic
        c.string()?; // will message
    }
    let username = if flags & 0x80 != 0 {
        Some(c.string()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(c.string()?)
    } else {
        None
    };
    if !c.0.is_empty() {
        return Err(format!(
            "{} bytes left after the CONNECT payload",
            c.0.len()
        ));
    }
    Ok(Connect {
        protocol,
        level,
        flags,
        keep_alive,
        client_id,
        username,
        password,
    })
}

#[test]
fn parses_a_connect_with_username_and_password() {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xc0, 0, 60];
    for s in [
        "dev/mod",
        "hub/dev/mod/?api-version=1",
        "SharedAccessSignature sr=x&sig=y&se=1",
    ] {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let c = parse_connect(&body).unwrap();
    assert_eq!(
        (
            c.protocol.as_str(),
            c.level,
            c.keep_alive,
            c.client_id.as_str()
        ),
        ("MQTT", 4, 60, "dev/mod")
    );
    assert_eq!(c.username.as_deref(), Some("hub/dev/mod/?api-version=1"));
    assert_eq!(
        c.password.as_deref(),
        Some("SharedAccessSignature sr=x&sig=y&se=1")
    );
    assert!(parse_connect(&body[..body.len() - 1]).is_err());
}
