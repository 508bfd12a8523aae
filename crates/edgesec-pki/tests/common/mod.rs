//! Shared pieces of the integration tests: a real software key store, a test clock, and two
//! independent verifiers (rustls-webpki and the openssl command line).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ::time::OffsetDateTime;
use edgesec_keys::KeyStore;
use edgesec_keys::soft::SoftKeyStore;
use edgesec_pki::{CertAuthority, IssuedCert, PkiConfig, TestClock};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::*;

/// A device: its state dir, key store and clock, kept across CA restarts.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn KeyStore>,
    pub clock: TestClock,
}

impl Device {
    pub fn new() -> Device {
        Self::with_clock(TestClock::starting_now())
    }

    pub fn with_clock(clock: TestClock) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn KeyStore> =
            Arc::new(SoftKeyStore::open(&dir.path().join("keys")).unwrap());
        Device { dir, store, clock }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Opens (or re-opens, as after a restart) the CA with `config`.
    pub fn open(&self, config: &PkiConfig) -> edgesec_pki::Result<Arc<CertAuthority>> {
        CertAuthority::open(
            config,
            self.store.clone(),
            Arc::new(self.clock.clone()),
            &self.state_dir(),
        )
    }

    pub fn now(&self) -> OffsetDateTime {
        edgesec_pki::Clock::now(&self.clock)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn quickstart() -> PkiConfig {
    PkiConfig::default()
}

pub fn parse_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

pub fn self_signed(der: &CertificateDer<'_>) -> bool {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    c.subject().as_raw() == c.issuer().as_raw()
}

/// Which purpose a certificate is checked for.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    Server,
    Client,
}

/// Checks `issued` against `bundle` with rustls-webpki: only the bundle's self-signed roots are
/// trust anchors, the intermediates come from the issued chain.
pub fn webpki_verify(
    issued: &IssuedCert,
    bundle_pem: &str,
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) -> Result<(), String> {
    let bundle = parse_pem(bundle_pem);
    let anchors: Vec<_> = bundle
        .iter()
        .filter(|c| self_signed(c))
        .map(|c| webpki::anchor_from_trusted_cert(c).unwrap().to_owned())
        .collect();
    assert!(!anchors.is_empty(), "the bundle has no root");
    let chain = parse_pem(&issued.certificate_pem);
    assert_eq!(chain[0], issued.leaf, "the leaf comes first");
    let ee = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| e.to_string())?;
    let time =
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.unix_timestamp() as u64));
    let usage = match purpose {
        Purpose::Server => webpki::KeyUsage::server_auth(),
        Purpose::Client => webpki::KeyUsage::client_auth(),
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        time,
        usage,
        None,
        None,
    )
    .map_err(|e| format!("{e:?}"))?;
    if let Some(name) = name {
        let sn = ServerName::try_from(name).map_err(|e| e.to_string())?;
        ee.verify_is_valid_for_subject_name(&sn)
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

/// True when the openssl command line is there. Without it a test skips, except in CI.
pub fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "openssl is required in CI"
        );
        eprintln!("openssl not found; skipping the openssl check");
    }
    ok
}

/// Writes `leaf.pem`, `chain.pem` (the intermediates) and `bundle.pem` into `dir`.
pub fn write_files(
    dir: &Path,
    issued: &IssuedCert,
    bundle_pem: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let chain = parse_pem(&issued.certificate_pem);
    let leaf = dir.join("leaf.pem");
    let inter = dir.join("chain.pem");
    let bundle = dir.join("bundle.pem");
    std::fs::write(&leaf, edgesec_keys::pem_encode("CERTIFICATE", &chain[0])).unwrap();
    let rest: String = chain[1..]
        .iter()
        .map(|c| edgesec_keys::pem_encode("CERTIFICATE", c))
        .collect();
    std::fs::write(&inter, rest).unwrap();
    std::fs::write(&bundle, bundle_pem).unwrap();
    (leaf, inter, bundle)
}

/// `openssl verify -x509_strict -CAfile bundle.pem -untrusted chain.pem -purpose ... leaf.pem`
/// at time `at`. `Ok(())` when openssl accepts, `Err(output)` otherwise; `Ok` too when openssl
/// is missing outside CI.
pub fn openssl_verify(
    dir: &Path,
    issued: &IssuedCert,
    bundle_pem: &str,
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) -> Result<(), String> {
    if !have_openssl() {
        return Ok(());
    }
    let (leaf, inter, bundle) = write_files(dir, issued, bundle_pem);
    let mut cmd = Command::new("openssl");
    cmd.arg("verify")
        .arg("-x509_strict")
        .arg("-attime")
        .arg(at.unix_timestamp().to_string())
        .arg("-CAfile")
        .arg(&bundle)
        .arg("-purpose")
        .arg(match purpose {
            Purpose::Server => "sslserver",
            Purpose::Client => "sslclient",
        });
    if std::fs::metadata(&inter).unwrap().len() > 0 {
        cmd.arg("-untrusted").arg(&inter);
    }
    if let Some(name) = name {
        if name.parse::<std::net::IpAddr>().is_ok() {
            cmd.arg("-verify_ip").arg(name);
        } else {
            cmd.arg("-verify_hostname").arg(name);
        }
    }
    cmd.arg(&leaf);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains(": OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// Both verifiers must accept.
pub fn verify_both(
    dir: &Path,
    issued: &IssuedCert,
    bundle_pem: &str,
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) {
    webpki_verify(issued, bundle_pem, at, purpose, name).expect("webpki rejected the chain");
    openssl_verify(dir, issued, bundle_pem, at, purpose, name).expect("openssl rejected the chain");
}

/// The SANs of a certificate: DNS names, IPs and URIs as strings.
pub fn sans(der: &CertificateDer<'_>) -> Vec<String> {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let Some(ext) = c.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::DNSName(s) => format!("DNS:{s}"),
            GeneralName::URI(s) => format!("URI:{s}"),
            GeneralName::IPAddress(b) => match b.len() {
                4 => format!(
                    "IP:{}",
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap())
                ),
                16 => format!(
                    "IP:{}",
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap())
                ),
                _ => "IP:?".into(),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

/// (not_before, not_after) of a certificate.
pub fn validity(der: &CertificateDer<'_>) -> (OffsetDateTime, OffsetDateTime) {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    (
        c.validity().not_before.to_datetime(),
        c.validity().not_after.to_datetime(),
    )
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki(der: &CertificateDer<'_>) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    c.public_key().raw.to_vec()
}

/// The edge CA certificate: the first certificate after the leaf.
pub fn edge_of(issued: &IssuedCert) -> CertificateDer<'static> {
    parse_pem(&issued.certificate_pem)[1].clone()
}
