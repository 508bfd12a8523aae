//! The provided and issued modes, with CAs a user would bring (made here with rcgen's own keys,
//! standing in for the user's tools).

mod common;

use std::path::Path;

use ::time::Duration;
use common::*;
use edgesec_keys::{ImportMaterial, KeyId};
use edgesec_pki::config::{KeySource, PemFile};
use edgesec_pki::renewal::Action;
use edgesec_pki::{CaMode, PkiConfig, PkiError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use zeroize::Zeroizing;

/// A user's CA: certificate and key.
struct UserCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    params: CertificateParams,
}

fn ca_params(cn: &str, path_len: Option<u8>, days: i64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = ::time::OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(days);
    p.use_authority_key_identifier_extension = true;
    p
}

fn user_root(cn: &str, days: i64) -> UserCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, None, days);
    let cert = params.self_signed(&key).unwrap();
    UserCa { cert, key, params }
}

fn user_sub(parent: &UserCa, cn: &str, path_len: u8, days: i64) -> UserCa {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, Some(path_len), days);
    let issuer = Issuer::from_params(&parent.params, &parent.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    UserCa { cert, key, params }
}

fn write(path: &Path, text: &str) -> PemFile {
    std::fs::write(path, text).unwrap();
    PemFile(path.to_path_buf())
}

fn provided(dev: &Device, edge: &UserCa, chain_pem: &str) -> PkiConfig {
    let mut cfg = PkiConfig::default();
    cfg.edge_ca.mode = CaMode::Provided;
    cfg.edge_ca.cert = Some(write(&dev.file("edge-chain.pem"), chain_pem));
    let key_file = dev.file("edge.key.pem");
    std::fs::write(&key_file, edge.key.serialize_pem()).unwrap();
    cfg.edge_ca.pk = Some(KeySource::File(key_file));
    cfg
}

#[test]
fn provided_chain_with_root_issues_verifiable_certs_and_is_never_renewed() {
    let dev = Device::new();
    let root = user_root("plant root", 3650);
    let edge = user_sub(&root, "plant edge CA", 0, 60);
    let cfg = provided(
        &dev,
        &edge,
        &format!("{}{}", edge.cert.pem(), root.cert.pem()),
    );
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("$edgeHub", "gw.plant").unwrap();
    let chain = parse_pem(&issued.certificate_pem);
    assert_eq!(chain.len(), 2, "leaf and edge CA, not the root");
    assert_eq!(&chain[1], edge.cert.der());
    let bundle = ca.trust_bundle_pem().unwrap();
    assert_eq!(
        parse_pem(&bundle),
        [root.cert.der().clone(), edge.cert.der().clone()]
    );
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("edgeHub"),
    );
    // Leaves stop at the provided CA's expiry.
    let mut long = cfg.clone();
    long.module_certs.expiry_days = 365;
    drop(ca);
    let ca = dev.open(&long).unwrap();
    let issued = ca
        .issue_identity_cert("m", "azureiot://h/devices/d/modules/m")
        .unwrap();
    assert_eq!(issued.not_after, validity(edge.cert.der()).1);
    verify_both(
        &dev.file("v2"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Client,
        None,
    );

    // Never renewed, even past the threshold; the key was imported once.
    dev.clock.advance(Duration::days(55));
    assert!(matches!(
        ca.next_action(dev.now()),
        Action::NeverRenew { .. }
    ));
    assert!(!ca.renew_due().unwrap());
    assert!(ca.force_renew(false).is_err());
    let imported: Vec<_> = dev
        .store
        .list()
        .unwrap()
        .into_iter()
        .filter(|k| k.id.as_str().starts_with("edgesec/ca/provided-"))
        .collect();
    assert_eq!(imported.len(), 1);
}

#[test]
fn provided_ca_without_root_in_the_file_and_a_key_already_in_the_store() {
    let dev = Device::new();
    let root = user_root("plant root", 3650);
    let edge = user_sub(&root, "plant edge CA", 0, 60);
    let id = KeyId::new("plant/edge-ca").unwrap();
    dev.store
        .import(
            &id,
            ImportMaterial::Pem(Zeroizing::new(edge.key.serialize_pem().into_bytes())),
        )
        .unwrap();
    let mut cfg = PkiConfig::default();
    cfg.edge_ca.mode = CaMode::Provided;
    cfg.edge_ca.cert = Some(write(&dev.file("edge.pem"), &edge.cert.pem()));
    cfg.edge_ca.pk = Some(KeySource::KeyStore(id));
    cfg.trust_bundle_cert = Some(write(&dev.file("roots.pem"), &root.cert.pem()));
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("m", "10.9.8.7").unwrap();
    let bundle = ca.trust_bundle_pem().unwrap();
    assert_eq!(
        parse_pem(&bundle),
        [edge.cert.der().clone(), root.cert.der().clone()]
    );
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("10.9.8.7"),
    );
}

#[test]
fn provided_files_that_do_not_fit_are_reported_by_name_and_left_alone() {
    let dev = Device::new();
    let root = user_root("plant root", 3650);
    let edge = user_sub(&root, "plant edge CA", 0, 60);
    let other = user_root("someone else", 30);

    // The key belongs to another certificate.
    let mut cfg = provided(&dev, &edge, &edge.cert.pem());
    std::fs::write(dev.file("edge.key.pem"), other.key.serialize_pem()).unwrap();
    let err = dev.open(&cfg).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    // ...and the wrong key did not stay in the store.
    assert!(dev.store.list().unwrap().is_empty());

    // The chain is in the wrong order.
    cfg = provided(
        &dev,
        &edge,
        &format!("{}{}", root.cert.pem(), edge.cert.pem()),
    );
    let err = dev.open(&cfg).unwrap_err();
    assert!(matches!(err, PkiError::CorruptFile { .. }), "{err}");
    assert!(err.to_string().contains("edge-chain.pem"), "{err}");

    // A corrupted file is named and not touched.
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    cfg = provided(&dev, &edge, garbage);
    let err = dev.open(&cfg).unwrap_err();
    assert!(err.to_string().contains("edge-chain.pem"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dev.file("edge-chain.pem")).unwrap(),
        garbage
    );

    // A leaf certificate is no CA.
    let leaf = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
    let mut cfg = PkiConfig::default();
    cfg.edge_ca.mode = CaMode::Provided;
    cfg.edge_ca.cert = Some(write(&dev.file("leaf.pem"), &leaf.cert.pem()));
    std::fs::write(dev.file("leaf.key"), leaf.signing_key.serialize_pem()).unwrap();
    cfg.edge_ca.pk = Some(KeySource::File(dev.file("leaf.key")));
    let err = dev.open(&cfg).unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");
}

fn issued_cfg(dev: &Device, upstream: &UserCa, chain_pem: &str) -> PkiConfig {
    let mut cfg = PkiConfig::default();
    cfg.edge_ca.mode = CaMode::Issued;
    cfg.edge_ca.issuer_cert = Some(write(&dev.file("upstream.pem"), chain_pem));
    let key_file = dev.file("upstream.key.pem");
    std::fs::write(&key_file, upstream.key.serialize_pem()).unwrap();
    cfg.edge_ca.issuer_pk = Some(KeySource::File(key_file));
    cfg
}

#[test]
fn issued_edge_ca_under_an_upstream_root_is_renewed_and_capped() {
    let dev = Device::new();
    let upstream = user_root("plant issuing root", 120);
    let cfg = issued_cfg(&dev, &upstream, &upstream.cert.pem());
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    let chain = parse_pem(&issued.certificate_pem);
    assert_eq!(chain.len(), 2);
    let bundle = ca.trust_bundle_pem().unwrap();
    assert_eq!(parse_pem(&bundle)[0], upstream.cert.der().clone());
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("edgeHub"),
    );
    assert!(!dev.state_dir().join("certs/device-root-ca.pem").exists());

    // Renewal at the threshold: a new edge CA key, still under the upstream CA, and capped at
    // the upstream CA's expiry (about 48 days left of 120 when renewing at day 72).
    dev.clock.advance(Duration::days(72));
    assert!(ca.renew_due().unwrap());
    let renewed = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    assert_ne!(spki(&edge_of(&issued)), spki(&edge_of(&renewed)));
    assert_eq!(
        validity(&edge_of(&renewed)).1,
        validity(upstream.cert.der()).1
    );
    let bundle = ca.trust_bundle_pem().unwrap();
    verify_both(
        &dev.file("v2"),
        &renewed,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("gw"),
    );
}

#[test]
fn issued_edge_ca_under_an_upstream_intermediate_chains_to_the_root() {
    let dev = Device::new();
    let root = user_root("plant root", 3650);
    let upstream = user_sub(&root, "plant issuing CA", 1, 1000);
    let cfg = issued_cfg(
        &dev,
        &upstream,
        &format!("{}{}", upstream.cert.pem(), root.cert.pem()),
    );
    let ca = dev.open(&cfg).unwrap();
    let issued = ca.issue_server_cert("opcua", "opcua").unwrap();
    let chain = parse_pem(&issued.certificate_pem);
    assert_eq!(chain.len(), 3, "leaf, edge CA, upstream CA");
    assert_eq!(&chain[2], upstream.cert.der());
    let bundle = ca.trust_bundle_pem().unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("opcua"),
    );
    // A restart keeps the edge CA; a new upstream CA makes edgesec issue a new one under it.
    drop(ca);
    let ca = dev.open(&cfg).unwrap();
    assert_eq!(edge_of(&ca.issue_server_cert("m", "m").unwrap()), chain[1]);
    drop(ca);
    let upstream2 = user_sub(&root, "plant issuing CA 2", 1, 1000);
    let cfg2 = issued_cfg(
        &dev,
        &upstream2,
        &format!("{}{}", upstream2.cert.pem(), root.cert.pem()),
    );
    let ca = dev.open(&cfg2).unwrap();
    let again = ca.issue_server_cert("m", "m").unwrap();
    assert_ne!(edge_of(&again), chain[1]);
    verify_both(
        &dev.file("v2"),
        &again,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}
