//! The little DER the hardware backends need: public keys as SubjectPublicKeyInfo, ECDSA
//! signatures as DER, the SHA-256 DigestInfo, and (PKCS#11) reading an RSA private key out of
//! PKCS#8 for import. Nothing here is general; every encoder writes only definite, minimal lengths.

/// `id-ecPublicKey`.
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (P-256): also the `CKA_EC_PARAMS` of a P-256 key.
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (P-384).
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// `id-Ed25519`.
pub(crate) const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// The `CKA_EC_PARAMS` some tokens use for Ed25519 instead of the OID: PrintableString.
pub(crate) const NAME_ED25519: &[u8] = b"\x13\x0cedwards25519";
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// DigestInfo for SHA-256 up to the digest itself (RFC 8017 §9.2 note 1).
pub(crate) const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

pub(crate) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(body);
    out
}

pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An INTEGER from an unsigned big-endian number (as PKCS#11 keeps them).
pub(crate) fn uint(be: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match be.iter().position(|&b| b != 0) {
        Some(i) => &be[i..],
        None => &[0],
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    tlv(0x02, &body)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 1);
    body.push(0);
    body.extend_from_slice(bytes);
    tlv(0x03, &body)
}

/// SPKI of an EC key on `curve` (an OID TLV) with the uncompressed `point`.
pub(crate) fn ec_spki(curve: &[u8], point: &[u8]) -> Vec<u8> {
    seq(&[&seq(&[OID_EC_PUBLIC_KEY, curve]), &bit_string(point)])
}

/// The PKCS#1 RSAPublicKey: what aws-lc's RSA verifiers take.
pub(crate) fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    seq(&[&uint(modulus), &uint(exponent)])
}

pub(crate) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    seq(&[&seq(&[OID_RSA, &[0x05, 0x00]]), &bit_string(pkcs1)])
}

pub(crate) fn ed25519_spki(public: &[u8]) -> Vec<u8> {
    seq(&[&seq(&[OID_ED25519]), &bit_string(public)])
}

/// DER `ECDSA-Sig-Value` from the big-endian `r` and `s`.
pub(crate) fn ecdsa_sig(r: &[u8], s: &[u8]) -> Vec<u8> {
    seq(&[&uint(r), &uint(s)])
}

/// Turns a PKCS#11 ECDSA signature (r ‖ s, each the field size) into DER `ECDSA-Sig-Value`.
pub(crate) fn ecdsa_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(ecdsa_sig(r, s))
}

/// The point of a `CKA_EC_POINT`: PKCS#11 says it is a DER OCTET STRING, but some tokens give the
/// bare point. `len` is the bare point's length (65 for P-256, 97 for P-384, 32 for Ed25519).
pub(crate) fn ec_point(attr: &[u8], len: usize) -> Option<Vec<u8>> {
    if attr.len() == len {
        return Some(attr.to_vec());
    }
    let mut r = Reader(attr);
    let inner = r.take(0x04)?;
    (r.0.is_empty() && inner.len() == len).then(|| inner.to_vec())
}

/// Reads DER TLVs one after another.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    /// The body of the next TLV, which must have tag `tag`.
    pub(crate) fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some(body)
    }

    /// An INTEGER as unsigned big-endian bytes without leading zeros.
    fn uint(&mut self) -> Option<&'a [u8]> {
        let body = self.take(0x02)?;
        let start = body.iter().position(|&b| b != 0).unwrap_or(body.len());
        Some(&body[start..])
    }
}

/// The parts of an RSA private key, in PKCS#11 attribute form.
pub(crate) struct RsaParts<'a> {
    pub(crate) modulus: &'a [u8],
    pub(crate) public_exponent: &'a [u8],
    pub(crate) private_exponent: &'a [u8],
    pub(crate) prime_1: &'a [u8],
    pub(crate) prime_2: &'a [u8],
    pub(crate) exponent_1: &'a [u8],
    pub(crate) exponent_2: &'a [u8],
    pub(crate) coefficient: &'a [u8],
}

/// Reads the RSAPrivateKey inside a PKCS#8 PrivateKeyInfo.
pub(crate) fn rsa_private_key(pkcs8: &[u8]) -> Option<RsaParts<'_>> {
    let mut info = Reader(Reader(pkcs8).take(0x30)?);
    info.uint()?; // version
    let alg = info.take(0x30)?;
    if !alg.starts_with(OID_RSA) {
        return None;
    }
    let mut key = Reader(Reader(info.take(0x04)?).take(0x30)?);
    key.uint()?; // version
    Some(RsaParts {
        modulus: key.uint()?,
        public_exponent: key.uint()?,
        private_exponent: key.uint()?,
        prime_1: key.uint()?,
        prime_2: key.uint()?,
        exponent_1: key.uint()?,
        exponent_2: key.uint()?,
        coefficient: key.uint()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_lengths_and_signatures() {
        assert_eq!(uint(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(uint(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(uint(&[0, 0]), [2, 1, 0]);
        let long = tlv(0x04, &[7; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(Reader(&long).take(0x04).unwrap().len(), 300);
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero, s is all zero
        let der = ecdsa_signature(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert!(ecdsa_signature(&[1, 2, 3]).is_none());
        assert_eq!(uint(&[]), vec![2, 1, 0]);
        assert_eq!(
            ecdsa_sig(&[1], &[0xff]),
            vec![0x30, 7, 2, 1, 1, 2, 2, 0, 0xff]
        );
    }

    #[test]
    fn ec_points_wrapped_or_bare() {
        let point: Vec<u8> = std::iter::once(4).chain([9u8; 64]).collect();
        assert_eq!(ec_point(&tlv(0x04, &point), 65).unwrap(), point);
        assert_eq!(ec_point(&point, 65).unwrap(), point);
        assert!(ec_point(&point[..60], 65).is_none());
        assert!(ec_point(&tlv(0x04, &point[..64]), 65).is_none());
    }

    #[test]
    fn rsa_parts_from_pkcs8_rebuild_the_public_key() {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::signature::KeyPair as _;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der<'_> = key.as_der().unwrap();
        let parts = rsa_private_key(der.as_ref()).unwrap();
        assert_eq!(parts.modulus.len(), 256);
        assert_eq!(
            rsa_public_key(parts.modulus, parts.public_exponent),
            key.public_key().as_ref()
        );
        assert!(rsa_private_key(&der.as_ref()[..100]).is_none());
    }
}
