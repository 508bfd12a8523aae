//! Checking a TLS client certificate chain against an enrolled CA.
//!
//! The TLS layer only proves that the client holds the leaf's private key
//! (see `tls.rs`); which CA the chain must end at depends on the enrollment
//! or hub device, so the chain is checked here, per request.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

/// Verifies `chain` (leaf first, then intermediates as the client sent them)
/// for client authentication up to one of the certificates in `ca_pem`, and
/// that the leaf's subject CN equals `expected_cn`.
pub(crate) fn verify_client_chain(
    chain: &[CertificateDer<'static>],
    ca_pem: &str,
    expected_cn: &str,
) -> Result<(), String> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or("no TLS client certificate was presented")?;

    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the enrolled CA is not valid PEM: {e}"))?;
    if cas.is_empty() {
        return Err("the enrolled CA PEM holds no certificate".to_owned());
    }
    let anchors = cas
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the enrolled CA cannot be a trust anchor: {e}"))?;

    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the client certificate cannot be parsed: {e}"))?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| {
            format!("the client certificate chain does not verify to the enrolled CA: {e}")
        })?;

    let cn = common_name(leaf)?;
    if cn != expected_cn {
        return Err(format!(
            "the client certificate CN {cn:?} does not match {expected_cn:?}"
        ));
    }
    Ok(())
}

fn common_name(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("the client certificate cannot be parsed: {e}"))?;
    let mut names = parsed.subject().iter_common_name();
    let cn = names
        .next()
        .ok_or("the client certificate has no subject CN")?
        .as_str()
        .map_err(|_| "the client certificate CN is not a string")?
        .to_owned();
    if names.next().is_some() {
        return Err("the client certificate has more than one subject CN".to_owned());
    }
    Ok(cn)
}
