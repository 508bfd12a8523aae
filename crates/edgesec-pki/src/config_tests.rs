use super::*;

#[test]
fn empty_config_is_quickstart_with_defaults() {
    let c = PkiConfig::from_toml("").unwrap();
    assert_eq!(c, PkiConfig::default());
    assert_eq!(c.edge_ca.mode, CaMode::Quickstart);
    assert_eq!(c.edge_ca.expiry_days, 90);
    assert_eq!(c.module_certs.expiry_days, 30);
    assert_eq!(c.module_certs.key_algorithm, KeyPairAlgorithm::EcP256);
    assert_eq!(c.edge_ca.auto_renew.threshold, Threshold::Percent(80));
    assert_eq!(c.edge_ca.auto_renew.retry, Threshold::Percent(4));
    assert!(c.edge_ca.auto_renew.rotate_key);
    c.validate().unwrap();
}

#[test]
fn full_quickstart_fixture() {
    let text = r#"
trust_bundle_cert = "file:///etc/edgesec/plant%20root.pem"

[edge_ca]
mode = "quickstart"
key_algorithm = "ec-p384"
expiry_days = 180
root_expiry_days = 1825
common_name = "line3 edge CA"

[edge_ca.auto_renew]
threshold = "2day"
retry = "30min"
rotate_key = false

[module_certs]
expiry_days = 7
key_algorithm = "rsa-2048"
extra_hostnames = ["gateway.local", "10.1.2.3"]
"#;
    let c = PkiConfig::from_toml(text).unwrap();
    c.validate().unwrap();
    assert_eq!(c.edge_ca.key_algorithm, KeyPairAlgorithm::EcP384);
    assert_eq!(c.edge_ca.expiry_days, 180);
    assert_eq!(c.edge_ca.root_expiry_days, 1825);
    assert_eq!(c.edge_ca.common_name.as_deref(), Some("line3 edge CA"));
    assert_eq!(
        c.edge_ca.auto_renew,
        RenewalPolicy {
            threshold: Threshold::Before(Duration::days(2)),
            retry: Threshold::Before(Duration::minutes(30)),
            rotate_key: false,
        }
    );
    assert_eq!(c.module_certs.key_algorithm, KeyPairAlgorithm::Rsa2048);
    assert_eq!(
        c.module_certs.extra_hostnames,
        ["gateway.local", "10.1.2.3"]
    );
    assert_eq!(
        c.trust_bundle_cert,
        Some(PemFile("/etc/edgesec/plant root.pem".into()))
    );
}

#[test]
fn provided_fixture_with_relative_paths() {
    let text = r#"
[edge_ca]
mode = "provided"
cert = "certs/edge-ca-chain.pem"
pk = "file:///var/secrets/edge-ca.key.pem"
"#;
    let mut c = PkiConfig::from_toml(text).unwrap();
    c.validate().unwrap();
    c.resolve_relative(Path::new("/etc/edgesec"));
    assert_eq!(
        c.edge_ca.cert,
        Some(PemFile("/etc/edgesec/certs/edge-ca-chain.pem".into()))
    );
    assert_eq!(
        c.edge_ca.pk,
        Some(KeySource::File("/var/secrets/edge-ca.key.pem".into()))
    );
}

#[test]
fn issued_fixture_with_a_key_in_the_store() {
    let text = r#"
[edge_ca]
mode = "issued"
issuer_cert = "/etc/edgesec/upstream-ca.pem"
issuer_pk = "keyd:plant/upstream-ca"
expiry_days = 30
"#;
    let c = PkiConfig::from_toml(text).unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.edge_ca.issuer_pk,
        Some(KeySource::KeyStore(
            KeyId::new("plant/upstream-ca").unwrap()
        ))
    );
}

#[test]
fn mode_needs_its_files() {
    for (text, want) in [
        (
            "[edge_ca]\nmode = \"provided\"\ncert = \"/a.pem\"",
            "needs `pk`",
        ),
        (
            "[edge_ca]\nmode = \"issued\"\nissuer_pk = \"/k.pem\"",
            "needs `issuer_cert`",
        ),
        (
            "[edge_ca]\ncert = \"/a.pem\"",
            "only used with mode = \"provided\"",
        ),
        ("[edge_ca]\nexpiry_days = 0", "must be positive"),
        ("[module_certs]\nexpiry_days = 0", "must be positive"),
        (
            "[edge_ca]\nexpiry_days = 5\n[edge_ca.auto_renew]\nthreshold = \"5day\"",
            "shorter than the CA lifetime",
        ),
        (
            "[module_certs]\nkey_algorithm = \"ed25519\"",
            "key_algorithm",
        ),
        (
            "[module_certs]\nextra_hostnames = [\"bad name\"]",
            "extra_hostnames",
        ),
    ] {
        let err = PkiConfig::from_toml(text)
            .and_then(|c| c.validate())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn parse_errors_are_readable() {
    for (text, want) in [
        ("[edge_ca]\nmode = \"selfsigned\"", "unknown variant"),
        ("[edge_ca]\nexpiry_dayz = 3", "unknown field `expiry_dayz`"),
        ("[edge_ca.auto_renew]\nthreshold = \"100%\"", "below 100"),
        ("[edge_ca.auto_renew]\nthreshold = \"0%\"", "positive"),
        (
            "[edge_ca.auto_renew]\nretry = \"soon\"",
            "expected a percentage",
        ),
        ("[edge_ca]\npk = \"keyd:../x\"", "key id"),
        ("[edge_ca]\ncert = \"https://x/y.pem\"", "only file://"),
        ("[edge_ca]\ncert = \"file://relative.pem\"", "absolute path"),
        ("[edge_ca]\nkey_algorithm = \"dsa\"", "unknown variant"),
    ] {
        let err = PkiConfig::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn threshold_forms() {
    for (s, want) in [
        ("80%", Threshold::Percent(80)),
        ("1%", Threshold::Percent(1)),
        ("90min", Threshold::Before(Duration::minutes(90))),
        ("12h", Threshold::Before(Duration::hours(12))),
        ("7day", Threshold::Before(Duration::days(7))),
        ("7 days", Threshold::Before(Duration::days(7))),
    ] {
        assert_eq!(s.parse::<Threshold>().unwrap(), want, "{s}");
    }
    for s in ["", "%", "-5%", "5", "5 weeks", "1.5h"] {
        assert!(s.parse::<Threshold>().is_err(), "{s}");
    }
}
