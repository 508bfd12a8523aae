//! Certificates from the workload API: parsing them for TLS, describing them in logs, judging
//! when to renew, and writing them out for independent checks.

use std::path::Path;
use std::time::{Duration, SystemTime};

use edgesec_api::workload::CertificateResponse;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

/// What the logs say about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, e.g. `CN=localhost`.
    pub subject: String,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS and IP SANs, in order.
    pub names: Vec<String>,
    /// URI SANs, in order.
    pub uris: Vec<String>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let time = |t: &x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            match u64::try_from(secs) {
                Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
                Err(_) => SystemTime::UNIX_EPOCH,
            }
        };
        let mut names = Vec::new();
        let mut uris = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("bad subject alternative names: {e}"))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => names.push(ip_text(ip)),
                GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(&cert.validity().not_before),
            not_after: time(&cert.validity().not_after),
            names,
            uris,
        })
    }

    /// The identity a peer is known by: its first URI SAN, else its subject.
    pub fn identity(&self) -> &str {
        self.uris.first().map_or(&self.subject, String::as_str)
    }

    /// When to fetch a new one: with 20% of its lifetime left.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - life / 5
    }
}

fn ip_text(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).expect("4 bytes")).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).expect("16 bytes")).to_string(),
        _ => format!("IP {raw:02x?}"),
    }
}

/// RFC 3339 in whole seconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A leaf, its chain and its key, ready for rustls.
#[derive(Debug)]
pub struct Credentials {
    /// The leaf first, then the intermediates, as the workload API sent them.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub leaf: CertInfo,
}

impl Credentials {
    /// Reads a workload API certificate response. `what` names it in errors.
    pub fn from_response(what: &str, r: &CertificateResponse) -> Result<Self, String> {
        let chain = parse_certs(&r.certificate).map_err(|e| format!("{what}: {e}"))?;
        let Some(first) = chain.first() else {
            return Err(format!("{what}: the response holds no certificate"));
        };
        let leaf = CertInfo::parse(first).map_err(|e| format!("{what}: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(r.private_key.bytes.as_bytes())
            .map_err(|e| format!("{what}: cannot read the private key: {e}"))?;
        Ok(Credentials { chain, key, leaf })
    }

    pub fn clone_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// Every certificate in a PEM text.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read the PEM certificates: {e}"))
}

/// The trust bundle as rustls roots, with the certificates (for describing chains).
#[derive(Debug, Clone)]
pub struct TrustBundle {
    pub roots: std::sync::Arc<RootCertStore>,
    pub certs: Vec<CertInfo>,
}

impl TrustBundle {
    pub fn parse(pem: &str) -> Result<Self, String> {
        let what = "the trust bundle";
        let ders = parse_certs(pem).map_err(|e| format!("{what}: {e}"))?;
        if ders.is_empty() {
            return Err(format!("{what} holds no certificate"));
        }
        let mut roots = RootCertStore::empty();
        let mut certs = Vec::with_capacity(ders.len());
        for der in ders {
            certs.push(CertInfo::parse(&der).map_err(|e| format!("{what}: {e}"))?);
            roots
                .add(der)
                .map_err(|e| format!("{what}: cannot use a certificate as a root: {e}"))?;
        }
        Ok(TrustBundle {
            roots: std::sync::Arc::new(roots),
            certs,
        })
    }

    /// A presented chain as `CN=leaf <- CN=intermediate <- CN=root (trust bundle)`.
    pub fn describe_chain(&self, presented: &[CertificateDer<'_>]) -> String {
        let infos: Vec<CertInfo> = presented
            .iter()
            .filter_map(|d| CertInfo::parse(d).ok())
            .collect();
        let mut parts: Vec<String> = infos.iter().map(|c| c.subject.clone()).collect();
        if let Some(last) = infos.last() {
            match self.certs.iter().find(|a| a.subject == last.issuer) {
                Some(anchor) if anchor.subject != last.subject => {
                    parts.push(format!("{} (trust bundle)", anchor.subject));
                }
                Some(_) => parts.push("(itself in the trust bundle)".into()),
                None => parts.push(format!("{} (not in the trust bundle)", last.issuer)),
            }
        }
        parts.join(" <- ")
    }
}

/// The PEM blocks of a text, each with its BEGIN and END lines.
pub fn pem_blocks(text: &str) -> Vec<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// Writes `{prefix}-leaf.pem`, `{prefix}-chain.pem` (the intermediates) and `bundle.pem` into
/// `dir`, each replaced atomically. The private key is never written.
pub fn dump(
    dir: &Path,
    prefix: &str,
    certificate_pem: &str,
    bundle_pem: &str,
) -> Result<(), String> {
    let blocks = pem_blocks(certificate_pem);
    let join = |b: &[&str]| b.iter().map(|s| format!("{s}\n")).collect::<String>();
    let leaf = join(&blocks[..blocks.len().min(1)]);
    let chain = join(blocks.get(1..).unwrap_or_default());
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in [
        (format!("{prefix}-leaf.pem"), leaf.as_str()),
        (format!("{prefix}-chain.pem"), chain.as_str()),
        ("bundle.pem".to_owned(), bundle_pem),
    ] {
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
