//! What this crate needs to know about a certificate, read with x509-parser, and the
//! signature check between a certificate and its issuer.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

/// The facts about one certificate that the CA works with.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub der: CertificateDer<'static>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Raw DER of the subject and issuer names, for chain building.
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    /// The subject, for log lines.
    pub subject: String,
    pub is_ca: bool,
    /// Subject equals issuer and the certificate's own key verifies its signature.
    pub self_signed: bool,
}

impl CertInfo {
    pub fn parse(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let validity = cert.validity();
        let subject_raw = cert.subject().as_raw().to_vec();
        let issuer_raw = cert.issuer().as_raw().to_vec();
        let self_signed =
            subject_raw == issuer_raw && cert.verify_signature(Some(cert.public_key())).is_ok();
        Ok(CertInfo {
            der: der.clone().into_owned(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            spki: cert.public_key().raw.to_vec(),
            subject: cert.subject().to_string(),
            is_ca: cert.is_ca(),
            subject_raw,
            issuer_raw,
            self_signed,
        })
    }

    /// True when `now` lies inside the validity period.
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// True when `child` names `issuer`'s subject as its issuer and `issuer`'s key verifies the
/// signature on `child`.
pub fn issued_by(child: &CertInfo, issuer: &CertInfo) -> bool {
    if child.issuer_raw != issuer.subject_raw {
        return false;
    }
    let Ok((_, c)) = X509Certificate::from_der(&child.der) else {
        return false;
    };
    let Ok((_, i)) = X509Certificate::from_der(&issuer.der) else {
        return false;
    };
    c.verify_signature(Some(i.public_key())).is_ok()
}

/// The raw public key inside a DER SubjectPublicKeyInfo (the BIT STRING's contents: the
/// uncompressed point for EC keys, the PKCS#1 `RSAPublicKey` for RSA, 32 bytes for Ed25519).
pub fn raw_public_key(spki_der: &[u8]) -> Result<Vec<u8>, String> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the public key".into());
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// SHA-256 of a certificate, as hex, for log lines.
pub fn fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn raw_key_is_the_point() {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let point = kp.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        // Build the SPKI by hand: SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING }
        let alg: &[u8] = &[
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        let mut spki = vec![0x30, 0x59];
        spki.extend_from_slice(alg);
        spki.extend_from_slice(&[0x03, 0x42, 0x00]);
        spki.extend_from_slice(&point);
        assert_eq!(raw_public_key(&spki).unwrap(), point);
        assert!(raw_public_key(&spki[..40]).is_err());
        let mut long = spki.clone();
        long.push(0);
        assert!(raw_public_key(&long).is_err());
    }

    #[test]
    fn garbage_does_not_parse() {
        assert!(CertInfo::parse(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
    }
}
