use super::*;

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.to_string().try_into().unwrap())
}

#[test]
fn edge_hub_gets_its_name_without_the_dollar() {
    let sans = server_sans("$edgeHub", "line3-gateway", &[]).unwrap();
    assert_eq!(sans, vec![dns("line3-gateway"), dns("edgeHub")]);
}

#[test]
fn an_ip_common_name_is_an_ip_san() {
    let sans = server_sans("sensor", "10.0.0.7", &["::1".into(), "gw.local".into()]).unwrap();
    assert_eq!(
        sans,
        vec![
            SanType::IpAddress("10.0.0.7".parse().unwrap()),
            dns("sensor"),
            SanType::IpAddress("::1".parse().unwrap()),
            dns("gw.local"),
        ]
    );
}

#[test]
fn duplicate_names_appear_once() {
    let sans = server_sans("$edgeHub", "EdgeHub", &["edgehub".into()]).unwrap();
    assert_eq!(sans, vec![dns("EdgeHub")]);
}

#[test]
fn bad_names() {
    assert!(matches!(
        server_sans("m", "bad name", &[]),
        Err(PkiError::InvalidRequest(_))
    ));
    for bad in ["", "a..b", "-a", "a-", "ünïcode", &"a".repeat(64), "x/y"] {
        assert!(san_for(bad).is_err(), "{bad:?}");
    }
    for good in [
        "edgeHub",
        "my_module",
        "a.b.c",
        "host.",
        "1.2.3.4",
        "fe80::1",
    ] {
        assert!(san_for(good).is_ok(), "{good:?}");
    }
    // An odd module name is only left out of the SANs.
    let sans = server_sans("my module", "gw", &[]).unwrap();
    assert_eq!(sans, vec![dns("gw")]);
}

#[test]
fn identity_uris() {
    let uri = module_identity_uri("hub.azure-devices.net", "dev1", "$edgeHub");
    assert_eq!(
        uri,
        "azureiot://hub.azure-devices.net/devices/dev1/modules/$edgeHub"
    );
    assert!(matches!(identity_san(&uri).unwrap(), SanType::URI(_)));
    for bad in ["no-scheme", "://x", "a b://c", "x://", "x://sp ace"] {
        assert!(identity_san(bad).is_err(), "{bad}");
    }
}

#[test]
fn validity_is_capped_and_backdated() {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (nb, na) = validity(now, Duration::days(30), None, None).unwrap();
    assert_eq!(nb, now - BACKDATE);
    assert_eq!(na, now + Duration::days(30));
    // Issuer ends in 10 days and began a minute ago.
    let (nb, na) = validity(
        now,
        Duration::days(30),
        Some(now - Duration::minutes(1)),
        Some(now + Duration::days(10)),
    )
    .unwrap();
    assert_eq!(nb, now - Duration::minutes(1));
    assert_eq!(na, now + Duration::days(10));
    // Issuer already expired.
    let err = validity(
        now,
        Duration::days(30),
        None,
        Some(now - Duration::seconds(1)),
    );
    assert!(matches!(err, Err(PkiError::CaExpired { .. })));
}

#[test]
fn serials_are_positive_and_distinct() {
    let a = random_serial().unwrap().to_bytes();
    let b = random_serial().unwrap().to_bytes();
    assert_eq!(a.len(), 16);
    assert!(a[0] & 0x80 == 0 && a[0] != 0);
    assert_ne!(a, b);
}

#[test]
fn long_common_names_are_cut_at_a_char_boundary() {
    assert_eq!(common_name("short"), "short");
    let long = "é".repeat(40); // 80 bytes
    let cn = common_name(&long);
    assert!(cn.len() <= 64 && cn.chars().all(|c| c == 'é'));
}

#[test]
fn leaf_keys_parse_back() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let (public, pem) = generate_leaf_key(KeyPairAlgorithm::EcP256).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_der()).unwrap();
    assert_eq!(kp.public_key().as_ref(), public.raw_public.as_slice());

    let (public, pem) = generate_leaf_key(KeyPairAlgorithm::Rsa2048).unwrap();
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(der.secret_der()).unwrap();
    assert_eq!(kp.public_key().as_ref(), public.raw_public.as_slice());

    assert!(generate_leaf_key(KeyPairAlgorithm::Ed25519).is_err());
}

#[test]
fn rsa_leaves_get_key_encipherment() {
    let now = OffsetDateTime::now_utc();
    let v = (now, now + Duration::days(1));
    let p = leaf_params(
        LeafKind::Server,
        "m",
        "m",
        vec![],
        KeyPairAlgorithm::Rsa2048,
        v,
    )
    .unwrap();
    assert!(p.key_usages.contains(&KeyUsagePurpose::KeyEncipherment));
    assert_eq!(p.extended_key_usages, [ExtendedKeyUsagePurpose::ServerAuth]);
    let p = leaf_params(
        LeafKind::Identity,
        "m",
        "m",
        vec![],
        KeyPairAlgorithm::EcP256,
        v,
    )
    .unwrap();
    assert_eq!(p.key_usages, [KeyUsagePurpose::DigitalSignature]);
    assert_eq!(p.extended_key_usages, [ExtendedKeyUsagePurpose::ClientAuth]);
    assert!(
        leaf_params(
            LeafKind::Server,
            "",
            "m",
            vec![],
            KeyPairAlgorithm::EcP256,
            v
        )
        .is_err()
    );
}
