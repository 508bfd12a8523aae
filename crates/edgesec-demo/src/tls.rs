//! Mutual TLS with rustls (aws-lc-rs): the server requires a client certificate that chains to
//! the trust bundle; the client trusts only the trust bundle and presents its identity.
//!
//! The exchange: the client sends one line, the server answers
//! `hello <client identity>: <line>` and closes.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::certs::{CertInfo, Credentials, TrustBundle};

/// Longest line either side reads.
const MAX_LINE: u64 = 4096;
/// Time for a whole exchange, handshake included.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server that requires clients to present a certificate chaining to `bundle`.
pub fn acceptor(creds: &Credentials, bundle: &TrustBundle) -> Result<TlsAcceptor, String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(bundle.roots.clone(), provider())
        .build()
        .map_err(|e| format!("cannot build the client certificate verifier: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain.clone(), creds.clone_key())
        .map_err(|e| format!("cannot use the server certificate: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client that trusts only `bundle` and presents `creds`.
pub fn connector(creds: &Credentials, bundle: &TrustBundle) -> Result<TlsConnector, String> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_root_certificates(bundle.roots.clone())
        .with_client_auth_cert(creds.chain.clone(), creds.clone_key())
        .map_err(|e| format!("cannot use the identity certificate: {e}"))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// What the server learned from one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub client_identity: String,
    pub line: String,
}

/// Runs one exchange on an accepted connection.
pub async fn serve_one(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<Served, String> {
    let exchange = async {
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let identity = match tls.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => CertInfo::parse(leaf)?.identity().to_owned(),
            _ => return Err("the client presented no certificate".to_owned()),
        };
        let mut reader = BufReader::new(tls);
        let mut line = String::new();
        (&mut reader)
            .take(MAX_LINE)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("cannot read the request of {identity}: {e}"))?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let mut tls = reader.into_inner();
        let answer = format!("hello {identity}: {line}\n");
        tls.write_all(answer.as_bytes())
            .await
            .map_err(|e| format!("cannot answer {identity}: {e}"))?;
        let _ = tls.shutdown().await;
        Ok(Served {
            client_identity: identity,
            line,
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no complete exchange within {EXCHANGE_TIMEOUT:?}")))
}

/// What a client learned from one exchange.
#[derive(Debug, Clone)]
pub struct Pinged {
    pub reply: String,
    /// The certificates the server presented, its leaf first.
    pub peer_chain: Vec<CertificateDer<'static>>,
    /// Protocol and cipher suite, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// Why an exchange failed: before TLS (nothing listening), because we refused the server's
/// certificate, or otherwise in TLS (the server refused us, alerts, timeouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingError {
    Connect(String),
    ServerCertificate(String),
    Tls(String),
}

impl PingError {
    /// Whether fetching our own certificate again might help.
    pub fn refetch_identity(&self) -> bool {
        matches!(self, PingError::Tls(_))
    }
}

impl std::fmt::Display for PingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PingError::Connect(e) | PingError::ServerCertificate(e) | PingError::Tls(e) => {
                f.write_str(e)
            }
        }
    }
}

fn tls_error(step: &str, e: std::io::Error) -> PingError {
    let ours = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let message = format!("{step}: {e}");
    if ours {
        PingError::ServerCertificate(message)
    } else {
        PingError::Tls(message)
    }
}

/// Connects to `addr`, verifies the server as `server_name`, sends `line`, reads the answer.
pub async fn ping(
    connector: &TlsConnector,
    addr: &str,
    server_name: &str,
    line: &str,
) -> Result<Pinged, PingError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| PingError::Tls(format!("invalid server name {server_name:?}: {e}")))?;
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| PingError::Connect(format!("cannot connect to {addr}: {e}")))?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error("TLS handshake failed", e))?;
        let (_, session) = tls.get_ref();
        let peer_chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        let cipher = format!(
            "{:?} {:?}",
            session
                .protocol_version()
                .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
            session
                .negotiated_cipher_suite()
                .map(|s| s.suite())
                .unwrap_or(rustls::CipherSuite::Unknown(0)),
        );
        tls.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| tls_error("cannot send the request", e))?;
        let mut reply = String::new();
        // A server that refuses our certificate says so with an alert, seen here (TLS 1.3).
        BufReader::new(&mut tls)
            .take(MAX_LINE)
            .read_line(&mut reply)
            .await
            .map_err(|e| tls_error("the server refused the exchange", e))?;
        if reply.is_empty() {
            return Err(PingError::Tls(
                "the server closed the connection without an answer".into(),
            ));
        }
        let _ = tls.shutdown().await;
        Ok(Pinged {
            reply: reply.trim_end_matches(['\r', '\n']).to_owned(),
            peer_chain,
            cipher,
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(PingError::Tls(format!(
                "no complete exchange with {addr} within {EXCHANGE_TIMEOUT:?}"
            )))
        })
}

/// Checks the server's answer to `line` and returns the identity the server saw.
pub fn check_reply(reply: &str, line: &str, expected_identity: &str) -> Result<String, String> {
    let seen = reply
        .strip_prefix("hello ")
        .and_then(|r| r.strip_suffix(line))
        .and_then(|r| r.strip_suffix(": "))
        .ok_or_else(|| format!("unexpected answer from the server: {reply:?}"))?;
    if seen != expected_identity {
        return Err(format!(
            "the server saw the client as {seen:?}, not as {expected_identity:?}"
        ));
    }
    Ok(seen.to_owned())
}
