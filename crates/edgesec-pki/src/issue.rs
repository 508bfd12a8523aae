//! Module certificates: the server certificate a module serves TLS with, and the identity
//! (client) certificate it authenticates with.

use std::net::IpAddr;

use edgesec_keys::KeyPairAlgorithm;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::{PkiError, Result};
use crate::remote_key::SubjectKey;

/// How far back a new certificate's not-before is set, so that a peer whose clock is a little
/// behind accepts it. Never earlier than the issuer's own not-before.
pub const BACKDATE: Duration = Duration::minutes(5);

/// The longest subject CN (RFC 5280 upper bound); longer names are cut, SANs keep them whole.
const MAX_CN: usize = 64;

/// A certificate issued to a module, with the private key made for it.
pub struct IssuedCert {
    /// PEM: the leaf, then every intermediate up to (not including) the root.
    pub certificate_pem: String,
    /// PEM PKCS#8 `PRIVATE KEY` of the leaf, wiped from memory on drop.
    pub private_key_pem: Zeroizing<String>,
    pub not_after: OffsetDateTime,
    pub leaf: CertificateDer<'static>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The expiry as the workload API reports it: RFC 3339, UTC.
    pub fn expiration_rfc3339(&self) -> String {
        crate::rfc3339(self.not_after)
    }
}

/// What kind of module certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    Server,
    Identity,
}

impl LeafKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LeafKind::Server => "server",
            LeafKind::Identity => "identity",
        }
    }
}

/// The SAN for a host name: an IP SAN when it parses as an IP address, else a DNS SAN.
pub fn san_for(name: &str) -> std::result::Result<SanType, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    check_dns_name(name)?;
    let ia5 = name
        .to_string()
        .try_into()
        .map_err(|_| format!("{name:?} is not an ASCII name"))?;
    Ok(SanType::DnsName(ia5))
}

fn check_dns_name(name: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("{name:?} is not a valid host name: {why}"));
    if name.is_empty() || name.len() > 253 {
        return bad("it must be 1 to 253 characters");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("only letters, digits, '-', '_' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    Ok(())
}

fn same_san(a: &SanType, b: &SanType) -> bool {
    match (a, b) {
        (SanType::DnsName(x), SanType::DnsName(y)) => x.as_str().eq_ignore_ascii_case(y.as_str()),
        _ => a == b,
    }
}

/// The SANs of a server certificate: the CN, the module name without a leading `$`, and the
/// configured extra host names, without duplicates. A module name that is not a valid host
/// name is left out (the CN still covers what clients dial).
pub fn server_sans(
    module: &str,
    common_name: &str,
    extra_hostnames: &[String],
) -> Result<Vec<SanType>> {
    let mut sans = vec![san_for(common_name).map_err(PkiError::InvalidRequest)?];
    let module_host = module.strip_prefix('$').unwrap_or(module);
    match san_for(module_host) {
        Ok(san) => sans.push(san),
        Err(why) => tracing::debug!(module, %why, "module name left out of the SANs"),
    }
    for extra in extra_hostnames {
        sans.push(san_for(extra).map_err(PkiError::Config)?);
    }
    let mut unique: Vec<SanType> = Vec::with_capacity(sans.len());
    for san in sans {
        if !unique.iter().any(|u| same_san(u, &san)) {
            unique.push(san);
        }
    }
    Ok(unique)
}

fn check_module_name(module: &str) -> Result<()> {
    if module.is_empty() || module.len() > 256 || module.chars().any(|c| c.is_control()) {
        return Err(PkiError::InvalidRequest(
            "the module name must be 1 to 256 printable characters".into(),
        ));
    }
    Ok(())
}

/// A random, positive, 16-byte serial number with no leading zero byte.
pub fn random_serial() -> Result<SerialNumber> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut bytes: [u8; 16] = aws_lc_rs::rand::generate(&rng)
        .map_err(|_| PkiError::Certificate("random number generator failed".into()))?
        .expose();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The CN: the name as given, cut to 64 bytes at a character boundary.
pub fn common_name(name: &str) -> String {
    let mut end = name.len().min(MAX_CN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The validity of a new certificate under an issuer valid from `issuer_nb` to `issuer_na`:
/// backdated a little but never before the issuer, and never past the issuer's end.
pub fn validity(
    now: OffsetDateTime,
    lifetime: Duration,
    issuer_nb: Option<OffsetDateTime>,
    issuer_na: Option<OffsetDateTime>,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut nb = now - BACKDATE;
    let mut na = now + lifetime;
    if let Some(inb) = issuer_nb {
        nb = nb.max(inb);
    }
    if let Some(ina) = issuer_na {
        na = na.min(ina);
    }
    if na <= now || na <= nb {
        return Err(PkiError::CaExpired {
            not_after: issuer_na.unwrap_or(na),
        });
    }
    Ok((nb, na))
}

/// The parameters of a module certificate.
pub fn leaf_params(
    kind: LeafKind,
    module: &str,
    name: &str,
    sans: Vec<SanType>,
    key_algorithm: KeyPairAlgorithm,
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
) -> Result<CertificateParams> {
    check_module_name(module)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name(name));
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(
        key_algorithm,
        KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096
    ) {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![match kind {
        LeafKind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        LeafKind::Identity => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The SAN of an identity certificate: the module's identity as a URI.
pub fn identity_san(identity_uri: &str) -> Result<SanType> {
    let bad = || {
        PkiError::InvalidRequest(format!(
            "{identity_uri:?} is not an ASCII URI with a scheme"
        ))
    };
    let scheme_ok = identity_uri.split_once("://").is_some_and(|(s, rest)| {
        !s.is_empty()
            && !rest.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if !scheme_ok || identity_uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(bad());
    }
    Ok(SanType::URI(
        identity_uri.to_string().try_into().map_err(|_| bad())?,
    ))
}

/// The identity URI IoT Hub modules are known by.
pub fn module_identity_uri(hub: &str, device_id: &str, module: &str) -> String {
    format!("azureiot://{hub}/devices/{device_id}/modules/{module}")
}

/// A module's own key pair. It is made in this process, not in the key service: the design's
/// one exception, because the private key is handed to that module in its certificate
/// response anyway, and keeping it in the key service would only add a copy.
pub fn generate_leaf_key(algorithm: KeyPairAlgorithm) -> Result<(SubjectKey, Zeroizing<String>)> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    };
    let failed = || PkiError::Certificate(format!("generating a {algorithm} key failed"));
    let (raw_public, pkcs8): (Vec<u8>, Zeroizing<Vec<u8>>) = match algorithm {
        KeyPairAlgorithm::EcP256 | KeyPairAlgorithm::EcP384 => {
            let alg = if algorithm == KeyPairAlgorithm::EcP256 {
                &ECDSA_P256_SHA256_ASN1_SIGNING
            } else {
                &ECDSA_P384_SHA384_ASN1_SIGNING
            };
            let kp = EcdsaKeyPair::generate(alg).map_err(|_| failed())?;
            let doc = kp.to_pkcs8v1().map_err(|_| failed())?;
            (
                kp.public_key().as_ref().to_vec(),
                Zeroizing::new(doc.as_ref().to_vec()),
            )
        }
        KeyPairAlgorithm::Rsa2048 | KeyPairAlgorithm::Rsa4096 => {
            let size = if algorithm == KeyPairAlgorithm::Rsa2048 {
                aws_lc_rs::rsa::KeySize::Rsa2048
            } else {
                aws_lc_rs::rsa::KeySize::Rsa4096
            };
            let kp = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| failed())?;
            let der = kp.as_der().map_err(|_| failed())?;
            (
                kp.public_key().as_ref().to_vec(),
                Zeroizing::new(der.as_ref().to_vec()),
            )
        }
        KeyPairAlgorithm::Ed25519 => {
            return Err(PkiError::Config("module keys cannot be ed25519".into()));
        }
    };
    let pem = private_key_pem(&pkcs8);
    Ok((
        SubjectKey {
            algorithm,
            raw_public,
        },
        pem,
    ))
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block, built only in buffers that are wiped on drop.
fn private_key_pem(der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    let b64_len = der.len().div_ceil(3) * 4;
    let mut b64 = Zeroizing::new(String::with_capacity(b64_len));
    base64::engine::general_purpose::STANDARD.encode_string(der, &mut b64);
    let mut out = Zeroizing::new(String::with_capacity(
        BEGIN.len() + END.len() + b64_len + b64_len / 64 + 1,
    ));
    out.push_str(BEGIN);
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out
}

#[cfg(test)]
#[path = "issue_tests.rs"]
mod tests;
