//! TLS for cloud calls: the system's trust store plus configured CA files, and, for X.509
//! devices, a client certificate whose private key stays in keyd.
//!
//! rustls asks for the client signature synchronously, in the middle of a handshake that runs
//! on an async task. [`KeydSigningKey`] answers it from a short-lived thread with its own
//! single-threaded runtime and keyd connection, and the handshake's thread waits for that
//! thread (inside `block_in_place` when it is a worker of a multi-threaded runtime, so the
//! runtime keeps its other tasks going). The wait is bounded by [`SIGN_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput};
use rustls::client::ResolvesClientCert;
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{ClientConfig, RootCertStore, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::CloudError;

/// How long a TLS client signature by keyd may take.
pub const SIGN_TIMEOUT: Duration = Duration::from_secs(20);

/// The system's CA bundle, as Debian, Ubuntu, Alpine and Fedora (compat link) install it.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Certificates of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CloudError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CloudError::Setup(format!("cannot read {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CloudError::Setup(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The system's trusted roots (`SSL_CERT_FILE` when set), and every certificate of
/// `extra_ca_files`. A system bundle that cannot be read is skipped with a warning; a
/// configured file that cannot be read is an error.
pub fn root_store(extra_ca_files: &[PathBuf]) -> Result<RootCertStore, CloudError> {
    let mut roots = RootCertStore::empty();
    let system: Vec<PathBuf> = match std::env::var_os("SSL_CERT_FILE") {
        Some(f) => vec![PathBuf::from(f)],
        None => SYSTEM_BUNDLES.iter().map(PathBuf::from).collect(),
    };
    if let Some(bundle) = system.iter().find(|p| p.is_file()) {
        match read_pem_certs(bundle) {
            Ok(certs) => {
                let (_added, ignored) = roots.add_parsable_certificates(certs);
                if ignored > 0 {
                    tracing::debug!(ignored, bundle = %bundle.display(), "unusable system CA certificates skipped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "system CA bundle not used"),
        }
    }
    for f in extra_ca_files {
        for c in read_pem_certs(f)? {
            roots.add(c).map_err(|e| {
                CloudError::Setup(format!("{}: not a usable CA certificate: {e}", f.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(CloudError::Setup(
            "no trusted CA certificates: the system bundle is missing and none are configured"
                .into(),
        ));
    }
    Ok(roots)
}

/// A client certificate chain and its key in keyd.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<KeydSigningKey>,
}

impl ClientIdentity {
    /// The certificate file (leaf first, then its chain) and the key with `handle` in keyd.
    pub async fn load(
        cert_file: &Path,
        keyd_socket: &Path,
        handle: &str,
    ) -> Result<Self, CloudError> {
        let chain = read_pem_certs(cert_file)?;
        let keyd = KeydClient::new(keyd_socket);
        let public = keyd.public_key(handle).await.map_err(|e| {
            CloudError::Keys(format!("the identity key of {}: {e}", cert_file.display()))
        })?;
        let key = KeydSigningKey::new(keyd_socket, handle, public.algorithm.as_str())?;
        Ok(ClientIdentity {
            chain,
            key: Arc::new(key),
        })
    }
}

/// The client config: `roots`, and the client certificate when there is one.
pub fn client_config(roots: RootCertStore, identity: Option<ClientIdentity>) -> ClientConfig {
    let builder = ClientConfig::builder().with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let key: Arc<dyn SigningKey> = id.key;
            let certified = Arc::new(CertifiedKey::new(id.chain, key));
            builder.with_client_cert_resolver(Arc::new(AlwaysThis(certified)))
        }
    }
}

/// Presents the one client certificate whatever the server asks.
#[derive(Debug)]
struct AlwaysThis(Arc<CertifiedKey>);

impl ResolvesClientCert for AlwaysThis {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes)?;
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS client key held by keyd.
#[derive(Debug, Clone)]
pub struct KeydSigningKey {
    socket: PathBuf,
    handle: String,
    kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    EcP256,
    EcP384,
    Rsa,
    Ed25519,
}

impl KeydSigningKey {
    /// `algorithm` is keyd's name of the key pair's algorithm (`ec-p256`, `rsa-2048`, ...).
    pub fn new(socket: &Path, handle: &str, algorithm: &str) -> Result<Self, CloudError> {
        let kind = match algorithm {
            "ec-p256" => KeyKind::EcP256,
            "ec-p384" => KeyKind::EcP384,
            "rsa-2048" | "rsa-4096" => KeyKind::Rsa,
            "ed25519" => KeyKind::Ed25519,
            other => {
                return Err(CloudError::Setup(format!(
                    "a {other} key cannot be a TLS client key"
                )));
            }
        };
        Ok(KeydSigningKey {
            socket: socket.to_owned(),
            handle: handle.to_owned(),
            kind,
        })
    }

    /// The TLS schemes this key can sign with, best first, and keyd's algorithm for each.
    fn schemes(&self) -> &'static [(SignatureScheme, SignAlgorithm)] {
        match self.kind {
            KeyKind::EcP256 => &[(
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignAlgorithm::EcdsaSha256,
            )],
            KeyKind::EcP384 => &[(
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignAlgorithm::EcdsaSha384,
            )],
            KeyKind::Rsa => &[
                (SignatureScheme::RSA_PSS_SHA256, SignAlgorithm::RsaPssSha256),
                (
                    SignatureScheme::RSA_PKCS1_SHA256,
                    SignAlgorithm::RsaPkcs1Sha256,
                ),
            ],
            KeyKind::Ed25519 => &[(SignatureScheme::ED25519, SignAlgorithm::Ed25519)],
        }
    }
}

impl SigningKey for KeydSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let (scheme, algorithm) = self.schemes().iter().find(|(s, _)| offered.contains(s))?;
        Some(Box::new(KeydSigner {
            key: self.clone(),
            scheme: *scheme,
            algorithm: *algorithm,
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.kind {
            KeyKind::EcP256 | KeyKind::EcP384 => SignatureAlgorithm::ECDSA,
            KeyKind::Rsa => SignatureAlgorithm::RSA,
            KeyKind::Ed25519 => SignatureAlgorithm::ED25519,
        }
    }
}

#[derive(Debug)]
struct KeydSigner {
    key: KeydSigningKey,
    scheme: SignatureScheme,
    algorithm: SignAlgorithm,
}

impl rustls::sign::Signer for KeydSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let (socket, handle, algorithm) = (
            self.key.socket.clone(),
            self.key.handle.clone(),
            self.algorithm,
        );
        let message = message.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("keyd-tls-sign".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(async {
                        let keyd = KeydClient::new(socket);
                        let call = keyd.sign(&handle, algorithm, SignInput::Message(&message));
                        match tokio::time::timeout(SIGN_TIMEOUT, call).await {
                            Ok(r) => r.map_err(|e| e.to_string()),
                            Err(_) => Err("keyd did not answer in time".to_owned()),
                        }
                    }),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| rustls::Error::General(format!("cannot start the signing thread: {e}")))?;
        let wait = || rx.recv_timeout(SIGN_TIMEOUT + Duration::from_secs(5));
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let answer = if on_worker {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        };
        match answer {
            Ok(Ok(sig)) => Ok(sig),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "keyd could not sign for the TLS client certificate");
                Err(rustls::Error::General(
                    "the key service could not sign".into(),
                ))
            }
            Err(_) => Err(rustls::Error::General(
                "the key service did not sign in time".into(),
            )),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_ca_files_are_trusted_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.test".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ok = dir.path().join("ca.pem");
        std::fs::write(&ok, ca.pem()).unwrap();
        let with = root_store(std::slice::from_ref(&ok)).unwrap();
        let without = root_store(&[]).map(|r| r.len()).unwrap_or(0);
        assert_eq!(with.len(), without + 1);

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a cert").unwrap();
        let e = root_store(&[empty]).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = root_store(&[dir.path().join("missing.pem")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn keys_offer_only_the_schemes_they_can_sign() {
        let k = KeydSigningKey::new(Path::new("/nonexistent"), "h", "ec-p256").unwrap();
        assert!(
            k.choose_scheme(&[SignatureScheme::RSA_PSS_SHA256])
                .is_none()
        );
        let s = k
            .choose_scheme(&[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ])
            .unwrap();
        assert_eq!(s.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
        assert_eq!(k.algorithm(), SignatureAlgorithm::ECDSA);
        assert!(KeydSigningKey::new(Path::new("/x"), "h", "hmac-sha256").is_err());
        // keyd absent: the signer fails cleanly, without a panic or a hang
        let e = s.sign(b"m").unwrap_err();
        assert!(e.to_string().contains("could not sign"), "{e}");
    }
}
