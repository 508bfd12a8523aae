//! The trust bundle: the certificates modules trust, as one PEM.

use rustls_pki_types::CertificateDer;

use crate::store::certs_to_pem;

/// Joins groups of certificates in order, dropping exact duplicates, as PEM.
pub fn assemble<'a>(groups: &[&'a [CertificateDer<'a>]]) -> String {
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut out: Vec<&CertificateDer<'a>> = Vec::new();
    for cert in groups.iter().flat_map(|g| g.iter()) {
        if !seen.contains(&cert.as_ref()) {
            seen.push(cert.as_ref());
            out.push(cert);
        }
    }
    certs_to_pem(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::certs_from_pem;

    fn cert(cn: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn keeps_order_and_drops_duplicates() {
        let (a, b, c) = (cert("a"), cert("b"), cert("c"));
        let root = [a.clone()];
        let chain = [b.clone(), a.clone()];
        let user = [c.clone(), b.clone()];
        let pem = assemble(&[&root, &chain, &user]);
        let back = certs_from_pem(pem.as_bytes(), std::path::Path::new("bundle")).unwrap();
        assert_eq!(back, vec![a, b, c]);
        assert_eq!(assemble(&[]), "");
    }
}
