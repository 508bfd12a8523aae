//! Quickstart mode against the real software key store: issuance, names, verification with two
//! independent verifiers, persistence and corrupted files.

mod common;

use ::time::Duration;
use common::*;
use edgesec_keys::KeyPairAlgorithm;
use edgesec_pki::{CaMode, PkiError, module_identity_uri};
use x509_parser::prelude::*;

#[test]
fn server_cert_for_edge_hub_verifies_with_both_verifiers() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let issued = ca.issue_server_cert("$edgeHub", "line3-gateway").unwrap();
    assert_eq!(
        sans(&issued.leaf),
        ["DNS:line3-gateway", "DNS:edgeHub"],
        "the module name loses its $"
    );
    let bundle = ca.trust_bundle_pem().unwrap();
    let out = dev.file("verify");
    for name in ["line3-gateway", "edgeHub"] {
        verify_both(
            &out,
            &issued,
            &bundle,
            dev.now(),
            Purpose::Server,
            Some(name),
        );
    }
    // Not for a name it does not carry, nor as a client certificate.
    assert!(webpki_verify(&issued, &bundle, dev.now(), Purpose::Server, Some("other")).is_err());
    assert!(webpki_verify(&issued, &bundle, dev.now(), Purpose::Client, None).is_err());
    if have_openssl() {
        for (purpose, name) in [(Purpose::Server, Some("other")), (Purpose::Client, None)] {
            let rejected = openssl_verify(&out, &issued, &bundle, dev.now(), purpose, name);
            assert!(rejected.is_err(), "openssl accepted {purpose:?} {name:?}");
        }
    }

    // Chain: leaf + edge CA, no root.
    let chain = parse_pem(&issued.certificate_pem);
    assert_eq!(chain.len(), 2);
    assert!(!self_signed(&chain[1]));
    // The private key matches the certificate.
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.private_key_pem.as_bytes()).unwrap();
    let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        key.secret_der(),
    )
    .unwrap();
    let (_, leaf) = X509Certificate::from_der(&issued.leaf).unwrap();
    assert_eq!(
        aws_lc_rs::signature::KeyPair::public_key(&kp).as_ref(),
        leaf.public_key().subject_public_key.data.as_ref()
    );
}

use rustls_pki_types::pem::PemObject;

#[test]
fn an_ip_common_name_yields_an_ip_san() {
    let dev = Device::new();
    let mut cfg = quickstart();
    cfg.module_certs.extra_hostnames = vec!["gw.local".into(), "fd00::5".into()];
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("opcua", "192.168.7.20").unwrap();
    assert_eq!(
        sans(&issued.leaf),
        ["IP:192.168.7.20", "DNS:opcua", "DNS:gw.local", "IP:fd00::5"]
    );
    let bundle = ca.trust_bundle_pem().unwrap();
    for name in ["192.168.7.20", "gw.local", "fd00::5"] {
        verify_both(
            &dev.file("v"),
            &issued,
            &bundle,
            dev.now(),
            Purpose::Server,
            Some(name),
        );
    }
}

#[test]
fn identity_cert_is_a_client_cert_with_a_uri_san() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let uri = module_identity_uri("hub.example.net", "dev-1", "$edgeAgent");
    let issued = ca.issue_identity_cert("$edgeAgent", &uri).unwrap();
    assert_eq!(sans(&issued.leaf), [format!("URI:{uri}")]);
    let (_, leaf) = X509Certificate::from_der(&issued.leaf).unwrap();
    assert_eq!(leaf.subject().to_string(), "CN=$edgeAgent");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let bundle = ca.trust_bundle_pem().unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Client,
        None,
    );
    assert!(webpki_verify(&issued, &bundle, dev.now(), Purpose::Server, None).is_err());
}

#[test]
fn certificate_profile() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let issued = ca.issue_server_cert("m", "m").unwrap();
    let bundle = parse_pem(&ca.trust_bundle_pem().unwrap());
    let root = bundle.iter().find(|c| self_signed(c)).unwrap().clone();
    let edge = edge_of(&issued);

    let (_, r) = X509Certificate::from_der(&root).unwrap();
    let (_, e) = X509Certificate::from_der(&edge).unwrap();
    let (_, l) = X509Certificate::from_der(&issued.leaf).unwrap();
    let bc = |c: &X509Certificate<'_>| c.basic_constraints().unwrap().unwrap().value.clone();
    assert!(bc(&r).ca && bc(&r).path_len_constraint == Some(1));
    assert!(bc(&e).ca && bc(&e).path_len_constraint == Some(0));
    assert!(!bc(&l).ca);
    for ca_cert in [&r, &e] {
        let ku = ca_cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    }
    let ku = l.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    // AKI of each certificate is the SKI of its issuer.
    let ski = |c: &X509Certificate<'_>| {
        c.iter_extensions()
            .find_map(|x| match x.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap()
    };
    let aki = |c: &X509Certificate<'_>| {
        c.iter_extensions()
            .find_map(|x| match x.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(aki(&e), ski(&r));
    assert_eq!(aki(&l), ski(&e));
    // Positive 16-byte serials.
    for c in [&r, &e, &l] {
        let serial = c.raw_serial();
        assert_eq!(serial.len(), 16);
        assert!(serial[0] & 0x80 == 0);
    }
    // Lifetimes: leaf 30 days, edge CA 90 days, both backdated a few minutes.
    let now = dev.now();
    let (nb, na) = validity(&issued.leaf);
    assert_eq!(na, now + Duration::days(30));
    assert!(nb <= now && nb >= now - Duration::minutes(5));
    assert_eq!(validity(&edge).1, now + Duration::days(90));
    assert_eq!(issued.not_after, na);
    assert!(issued.expiration_rfc3339().ends_with('Z'));
}

#[test]
fn a_leaf_never_outlives_its_issuer() {
    let dev = Device::new();
    let mut cfg = quickstart();
    cfg.edge_ca.expiry_days = 10;
    cfg.edge_ca.auto_renew.threshold = edgesec_pki::Threshold::Percent(99);
    cfg.module_certs.expiry_days = 30;
    let ca = dev.open(&cfg).unwrap();
    dev.clock.advance(Duration::days(5));
    let issued = ca.issue_server_cert("m", "m").unwrap();
    let edge_na = validity(&edge_of(&issued)).1;
    assert_eq!(issued.not_after, edge_na);
    assert_eq!(validity(&issued.leaf).1, edge_na);
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn rsa_module_keys_by_config() {
    let dev = Device::new();
    let mut cfg = quickstart();
    cfg.module_certs.key_algorithm = KeyPairAlgorithm::Rsa2048;
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("m", "host.local").unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.private_key_pem.as_bytes()).unwrap();
    let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(key.secret_der()).unwrap();
    assert_eq!(kp.public_modulus_len(), 256);
    let (_, l) = X509Certificate::from_der(&issued.leaf).unwrap();
    assert!(l.key_usage().unwrap().unwrap().value.key_encipherment());
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("host.local"),
    );
}

#[test]
fn ca_keys_of_other_algorithms() {
    for alg in [
        KeyPairAlgorithm::EcP384,
        KeyPairAlgorithm::Rsa2048,
        KeyPairAlgorithm::Ed25519,
    ] {
        let dev = Device::new();
        let mut cfg = quickstart();
        cfg.edge_ca.key_algorithm = alg;
        let ca = dev.open(&cfg).unwrap();
        let issued = ca.issue_server_cert("m", "m").unwrap();
        verify_both(
            &dev.file("v"),
            &issued,
            &ca.trust_bundle_pem().unwrap(),
            dev.now(),
            Purpose::Server,
            Some("m"),
        );
    }
}

#[test]
fn a_restart_keeps_the_chain_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let first = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    let bundle = ca.trust_bundle_pem().unwrap();
    drop(ca);
    dev.clock.advance(Duration::days(3));
    let ca = dev.open(&quickstart()).unwrap();
    assert_eq!(ca.trust_bundle_pem().unwrap(), bundle);
    let second = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    assert_eq!(edge_of(&first), edge_of(&second));
    assert_eq!(ca.status().mode, CaMode::Quickstart);

    let certs = dev.state_dir().join("certs");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&certs), 0o700);
    for name in [
        "device-root-ca.pem",
        "edge-ca.pem",
        "trust-bundle.pem",
        "ca-state.toml",
    ] {
        assert_eq!(mode(&certs.join(name)), 0o600, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(certs.join("trust-bundle.pem")).unwrap(),
        bundle
    );
    // The module's latest certificate is kept too.
    ca.flush_records();
    let kept: Vec<_> = std::fs::read_dir(certs.join("modules")).unwrap().collect();
    assert_eq!(kept.len(), 1);
}

#[test]
fn a_corrupted_edge_ca_file_is_named_and_regenerated() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let bundle = ca.trust_bundle_pem().unwrap();
    let old_edge = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    drop(ca);
    let edge_file = dev.state_dir().join("certs/edge-ca.pem");
    std::fs::write(
        &edge_file,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ca = dev.open(&quickstart()).unwrap();
    let new_edge = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    assert_ne!(old_edge, new_edge);
    // Same root, so the old trust bundle still verifies new certificates.
    let root_of = |b: &str| parse_pem(b).into_iter().find(|c| self_signed(c)).unwrap();
    assert_eq!(root_of(&ca.trust_bundle_pem().unwrap()), root_of(&bundle));
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn a_corrupted_root_file_is_regenerated_with_a_new_edge_ca() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let old_bundle = ca.trust_bundle_pem().unwrap();
    drop(ca);
    std::fs::write(dev.state_dir().join("certs/device-root-ca.pem"), "garbage").unwrap();
    let ca = dev.open(&quickstart()).unwrap();
    let bundle = ca.trust_bundle_pem().unwrap();
    assert_ne!(bundle, old_bundle);
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn bad_requests_are_refused() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    assert!(matches!(
        ca.issue_server_cert("m", "not a host"),
        Err(PkiError::InvalidRequest(_))
    ));
    assert!(matches!(
        ca.issue_server_cert("", "h"),
        Err(PkiError::InvalidRequest(_))
    ));
    assert!(matches!(
        ca.issue_identity_cert("m", "no scheme"),
        Err(PkiError::InvalidRequest(_))
    ));
}

#[test]
fn the_trust_bundle_adds_user_cas_without_duplicates() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let own = ca.trust_bundle_pem().unwrap();
    drop(ca);
    // A user CA file with an unrelated CA and a copy of our own root.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "plant root");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let plant = p.self_signed(&key).unwrap();
    let root = parse_pem(&own)
        .into_iter()
        .find(|c| self_signed(c))
        .unwrap();
    let user = dev.file("user-cas.pem");
    std::fs::write(
        &user,
        format!(
            "{}{}",
            plant.pem(),
            edgesec_keys::pem_encode("CERTIFICATE", &root)
        ),
    )
    .unwrap();
    let mut cfg = quickstart();
    cfg.trust_bundle_cert = Some(edgesec_pki::config::PemFile(user.clone()));
    let ca = dev.open(&cfg).unwrap();
    let bundle = parse_pem(&ca.trust_bundle_pem().unwrap());
    let own = parse_pem(&own);
    assert_eq!(bundle.len(), own.len() + 1);
    assert_eq!(&bundle[..own.len()], &own[..]);
    assert_eq!(bundle.last().unwrap(), plant.der());

    // A broken user file is an error naming it.
    std::fs::write(&user, "junk").unwrap();
    let err = dev.open(&cfg).unwrap_err();
    assert!(err.to_string().contains("user-cas.pem"), "{err}");
}
