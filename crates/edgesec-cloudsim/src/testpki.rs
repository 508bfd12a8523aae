//! Certificates for tests of X.509 attestation: a CA (root or intermediate)
//! that issues client certificates, so a test can enroll the CA and present
//! a chain from it, or from another CA to see it refused.
//!
//! Generation errors here are not input errors but a broken crypto library,
//! so they panic with a message; only [`TestCa::sign_client_csr`] takes
//! outside input and returns an error.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// PEM of this CA and the intermediates above it, without the root:
    /// what a client sends after its leaf.
    intermediates_pem: String,
}

/// A client certificate with its key, ready for a TLS client.
pub struct IssuedCert {
    /// The leaf alone.
    pub cert_pem: String,
    /// The leaf followed by the issuing intermediates (not the root).
    pub chain_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A self-signed root CA.
    pub fn new_root(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let issuer =
            CertifiedIssuer::self_signed(ca_params(common_name), key).expect("self-sign CA");
        TestCa {
            issuer,
            intermediates_pem: String::new(),
        }
    }

    /// An intermediate CA issued by this one.
    pub fn new_intermediate(&self, common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate intermediate key");
        let issuer = CertifiedIssuer::signed_by(ca_params(common_name), key, &self.issuer)
            .expect("issue intermediate CA");
        let intermediates_pem = format!("{}{}", issuer.pem(), self.intermediates_pem);
        TestCa {
            issuer,
            intermediates_pem,
        }
    }

    /// This CA's own certificate: what an enrollment or hub device trusts.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client-auth certificate with this subject CN and a fresh P-256 key.
    pub fn issue_client(&self, common_name: &str) -> IssuedCert {
        let key = KeyPair::generate().expect("generate client key");
        let cert = client_params(common_name)
            .signed_by(&key, &self.issuer)
            .expect("issue client cert");
        let cert_pem = cert.pem();
        IssuedCert {
            chain_pem: format!("{cert_pem}{}", self.intermediates_pem),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }

    /// Issues a client-auth certificate for a CSR, keeping its subject; the
    /// answer is the chain (leaf, then intermediates) as PEM.
    pub fn sign_client_csr(&self, csr_pem: &str) -> Result<String, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("bad CSR: {e}"))?;
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.use_authority_key_identifier_extension = true;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| format!("cannot sign CSR: {e}"))?;
        Ok(format!("{}{}", cert.pem(), self.intermediates_pem))
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params
}

fn client_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params
}
