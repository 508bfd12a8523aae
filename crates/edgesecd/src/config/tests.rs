use super::*;

const DIR: &str = "/etc/edgesec";

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(&Path::new(DIR).join("config.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn the_quickstart_config_loads_with_paths_beside_it() {
    let c = parse(include_str!("../../../../examples/quickstart/config.toml")).unwrap();
    assert_eq!(c.hostname, "edgesec-quickstart");
    assert_eq!(c.state_dir, Path::new("/etc/edgesec/state/edgesecd"));
    assert_eq!(c.keyd.socket, Path::new("/etc/edgesec/run/keyd.sock"));
    assert_eq!(
        c.keyd.start_with_config.as_deref(),
        Some(Path::new("/etc/edgesec/keyd.toml"))
    );
    assert_eq!(
        c.agent.deployment,
        Path::new("/etc/edgesec/deployment.json")
    );
    assert_eq!(c.provisioning.source, ProvisioningSource::Local);
    assert_eq!(c.provisioning.device_id, "quickstart-device");
    assert_eq!(
        c.audit_log,
        Path::new("/etc/edgesec/state/edgesecd/audit.log")
    );
    assert!(c.management.admin_uids.contains(&0));
}

#[test]
fn a_full_config_loads() {
    let c = parse(include_str!("../../tests/fixtures/full.toml")).unwrap();
    assert_eq!(c.provisioning.device_id, "line3");
    assert_eq!(c.provisioning.iothub_hostname, "hub1.azure-devices.net");
    assert!(c.provisioning.shared_access_key.is_some());
    assert_eq!(c.management.admin_uids, [0, 1000]);
    assert_eq!(c.management.admin_gid, Some(990));
    assert_eq!(
        c.agent.command,
        Path::new("/usr/libexec/edgesec/edgesec-agent")
    );
    assert_eq!(
        c.agent.env.get("EDGESEC_LOG").map(String::as_str),
        Some("debug")
    );
    assert_eq!(c.watchdog.interval, Duration::from_secs(30));
    assert!(c.pki.trust_bundle_cert.is_some());
}

#[test]
fn bad_configs_name_the_key() {
    let base = "state_dir = \"s\"\n[keyd]\nsocket = \"k\"\n";
    for (text, needle) in [
        (base.to_string(), "missing field `provisioning`"),
        (
            format!("{base}[provisioning]\nsource = \"cloud\"\n"),
            "key `provisioning.source`",
        ),
        (
            format!("{base}[provisioning]\nsource = \"local\"\n"),
            "key `provisioning.device_id`: required",
        ),
        (
            format!("{base}[provisioning]\nsource = \"local\"\ndevice_id = \"a b\"\n"),
            "key `provisioning.device_id`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName=h;DeviceId=d\"\n"
            ),
            "key `provisioning.connection_string`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"manual\"\nconnection_string = \"HostName=h;DeviceId=d;SharedAccessKey=k;Extra=1\"\n"
            ),
            "unsupported part \"Extra\"",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[agent]\nname = \"a/b\"\n"
            ),
            "key `agent.name`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[agent]\ntype = \"docker\"\n"
            ),
            "key `agent.image`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[watchdog]\ninterval_secs = 0\n"
            ),
            "key `watchdog`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[management]\nadmin_uids = [\"root\"]\n"
            ),
            "key `management.admin_uids`",
        ),
        (
            format!(
                "{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n[workload]\nsockett = \"x\"\n"
            ),
            "unknown field `sockett`",
        ),
        (
            format!(
                "hostname = \"bad host\"\n{base}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n"
            ),
            "key `hostname`",
        ),
    ] {
        let e = parse(&text).unwrap_err();
        assert!(
            e.starts_with("/etc/edgesec/config.toml") && e.contains(needle),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn programs_are_found_beside_edgesecd_or_taken_as_paths() {
    let file = Path::new("/etc/edgesec/config.toml");
    assert_eq!(
        find_program(file, "bin/agent"),
        Path::new("/etc/edgesec/bin/agent")
    );
    assert_eq!(find_program(file, "/abs/agent"), Path::new("/abs/agent"));
    assert!(find_program(file, "sh").is_absolute(), "found in PATH");
    assert_eq!(
        find_program(file, "no-such-program-xyz"),
        Path::new("no-such-program-xyz")
    );
}

const BASE: &str = "state_dir = \"s\"\n[keyd]\nsocket = \"k\"\n";

#[test]
fn manual_sas_x509_and_dps_load() {
    let c = parse(&format!(
        "{BASE}[provisioning]\nsource = \"manual\"\niothub_hostname = \"h.azure-devices.net\"\ndevice_id = \"d1\"\n\
         [provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = \"keyd:edgesec/device-key\"\n"
    ))
    .unwrap();
    assert_eq!(c.provisioning.device_id, "d1");
    assert!(
        matches!(&c.provisioning.auth, DeviceAuth::SasKey(edgesec_pki::config::KeySource::KeyStore(id)) if id.as_str() == "edgesec/device-key")
    );
    assert!(c.provisioning.has_hub());

    let c = parse(&format!(
        "{BASE}[provisioning]\nsource = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d1\"\n\
         [provisioning.authentication]\nmethod = \"x509\"\nidentity_cert = \"id.pem\"\nidentity_pk = \"file:///k.pem\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.provisioning.auth,
        DeviceAuth::X509 {
            identity_cert: "/etc/edgesec/id.pem".into(),
            identity_pk: edgesec_pki::config::KeySource::File("/k.pem".into()),
        }
    );

    for (att, want) in [
        (
            "method = \"symmetric_key\"\nregistration_id = \"r1\"\nsymmetric_key = \"keyd:edgesec/dps-key\"",
            "symmetric",
        ),
        (
            "method = \"x509\"\nregistration_id = \"r1\"\nidentity_cert = \"/c.pem\"\nidentity_pk = \"keyd:edgesec/dps-id\"",
            "x509",
        ),
        ("method = \"tpm\"\nregistration_id = \"r1\"", "tpm"),
    ] {
        let c = parse(&format!(
            "{BASE}[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"https://global.azure-devices-provisioning.net\"\n\
             id_scope = \"0ne0000A0A\"\n[provisioning.attestation]\n{att}\n"
        ))
        .unwrap();
        let DeviceAuth::Dps {
            registration_id,
            attestation,
            ..
        } = &c.provisioning.auth
        else {
            panic!("{want}");
        };
        assert_eq!(registration_id.as_deref(), Some("r1"));
        assert!(
            format!("{attestation:?}").to_lowercase().starts_with(want),
            "{attestation:?}"
        );
        assert_eq!(c.provisioning.reprovisioning, ReprovisionMode::OnError);
        assert_eq!(c.cloud.timeout, Duration::from_secs(70));
        assert_eq!(c.cloud.retries, 1);
        assert_eq!(c.cloud.dps_poll_interval, Duration::from_secs(5));
    }
}

#[test]
fn mixed_provisioning_variants_name_the_key() {
    let dps = "source = \"dps\"\nglobal_endpoint = \"https://g\"\nid_scope = \"0ne1\"\n";
    for (body, needle) in [
        (
            "source = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\n",
            "key `provisioning.authentication.device_id_pk`: required",
        ),
        (
            "source = \"manual\"\niothub_hostname = \"h\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = \"keyd:k\"\nidentity_cert = \"c\"\n",
            "key `provisioning.authentication.identity_cert`: not used",
        ),
        (
            "source = \"manual\"\ndevice_id = \"d\"\n[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = \"keyd:k\"\n",
            "key `provisioning.iothub_hostname`: required",
        ),
        (
            "source = \"manual\"\nconnection_string = \"HostName=h;DeviceId=d;SharedAccessKey=k\"\n[provisioning.authentication]\nmethod = \"sas\"\ndevice_id_pk = \"keyd:k\"\n",
            "key `provisioning`",
        ),
        (
            "source = \"manual\"\n",
            "key `provisioning.connection_string`",
        ),
        (
            "source = \"local\"\ndevice_id = \"d\"\nid_scope = \"x\"\n",
            "key `provisioning.id_scope`: not used",
        ),
        (
            &format!("{dps}device_id = \"d\"\n"),
            "key `provisioning.device_id`: not used",
        ),
        (dps, "key `provisioning.attestation`: required"),
        (
            &format!(
                "{dps}[provisioning.attestation]\nmethod = \"sas\"\nregistration_id = \"r\"\n"
            ),
            "key `provisioning.attestation.method`",
        ),
        (
            &format!(
                "{dps}[provisioning.attestation]\nmethod = \"symmetric_key\"\nsymmetric_key = \"keyd:k\"\n"
            ),
            "key `provisioning.attestation.registration_id`: required",
        ),
        (
            &format!(
                "{dps}[provisioning.attestation]\nmethod = \"tpm\"\nregistration_id = \"r\"\nsymmetric_key = \"keyd:k\"\n"
            ),
            "key `provisioning.attestation.symmetric_key`: not used",
        ),
        (
            "source = \"dps\"\nglobal_endpoint = \"http://g\"\nid_scope = \"0ne1\"\n[provisioning.attestation]\nmethod = \"tpm\"\nregistration_id = \"r\"\n",
            "key `provisioning.global_endpoint`",
        ),
        (
            &format!("{dps}[provisioning.attestation]\nmethod = \"magic\"\n"),
            "key `provisioning.attestation.method`",
        ),
    ] {
        let text = format!("{BASE}[provisioning]\n{body}");
        let e = parse(&text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn a_dps_config_with_cloud_settings_loads() {
    let c = parse(include_str!("../../tests/fixtures/dps-cloud.toml")).unwrap();
    let DeviceAuth::Dps {
        global_endpoint,
        registration_id,
        attestation,
        ..
    } = &c.provisioning.auth
    else {
        panic!("{:?}", c.provisioning.auth);
    };
    assert_eq!(
        global_endpoint,
        "https://global.azure-devices-provisioning.net"
    );
    assert_eq!(registration_id.as_deref(), Some("line3-gateway"));
    assert!(
        matches!(attestation, DpsAttestation::GroupKey(edgesec_pki::config::KeySource::KeyStore(id)) if id.as_str() == "edgesec/dps-group-key"),
        "{attestation:?}"
    );
    assert_eq!(
        c.provisioning.dps_payload.as_deref(),
        Some(Path::new("/etc/edgesec/dps-payload.json"))
    );
    assert_eq!(c.provisioning.reprovisioning, ReprovisionMode::Dynamic);
    assert_eq!(
        c.cloud,
        CloudSettings {
            trusted_ca_certs: vec![
                "/etc/edgesec/plant-proxy-ca.pem".into(),
                "/abs/ca.pem".into()
            ],
            proxy: Some("http://proxy.plant.lan:3128".into()),
            timeout: Duration::from_secs(30),
            retries: 4,
            retry_base_delay: Duration::from_millis(500),
            dps_poll_interval: Duration::from_secs(2),
        }
    );
}

#[test]
fn reprovisioning_modes_take_both_spellings() {
    for (text, want) in [
        ("on-error", ReprovisionMode::OnError),
        ("OnErrorOnly", ReprovisionMode::OnError),
        ("always-on-startup", ReprovisionMode::AlwaysOnStartup),
        ("AlwaysOnStartup", ReprovisionMode::AlwaysOnStartup),
        ("dynamic", ReprovisionMode::Dynamic),
        ("Dynamic", ReprovisionMode::Dynamic),
    ] {
        let c = parse(&format!(
            "auto_reprovisioning_mode = \"{text}\"\n{BASE}[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n"
        ))
        .unwrap();
        assert_eq!(c.provisioning.reprovisioning, want, "{text}");
    }
}

#[test]
fn bad_cloud_settings_name_the_key() {
    let local = "[provisioning]\nsource = \"local\"\ndevice_id = \"d\"\n";
    let dps =
        "[provisioning]\nsource = \"dps\"\nglobal_endpoint = \"https://g\"\nid_scope = \"0ne1\"\n";
    for (text, needle) in [
        (
            format!("auto_reprovisioning_mode = \"sometimes\"\n{BASE}{local}"),
            "key `auto_reprovisioning_mode`",
        ),
        (
            format!("cloud_timeout_sec = 0\n{BASE}{local}"),
            "key `cloud_timeout_sec`",
        ),
        (
            format!("cloud_retries = 100\n{BASE}{local}"),
            "key `cloud_retries`",
        ),
        (
            format!("{BASE}{local}[cloud]\nproxy = \"socks5://p:1\"\n"),
            "key `cloud.proxy`",
        ),
        (
            format!("{BASE}{local}[cloud]\ndps_poll_interval_secs = 0\n"),
            "key `cloud.dps_poll_interval_secs`",
        ),
        (
            format!("{BASE}{local}[cloud]\nproxyy = \"http://p:1\"\n"),
            "unknown field `proxyy`",
        ),
        (
            format!(
                "{BASE}{dps}payload = {{ uri = \"https://x/p.json\" }}\n[provisioning.attestation]\nmethod = \"tpm\"\nregistration_id = \"r\"\n"
            ),
            "key `provisioning.payload.uri`",
        ),
        (
            format!("{BASE}{local}payload = {{ uri = \"/p.json\" }}\n"),
            "key `provisioning.payload`: not used",
        ),
        (
            format!(
                "{BASE}{dps}[provisioning.attestation]\nmethod = \"symmetric_key\"\nregistration_id = \"r\"\nsymmetric_key = \"keyd:a\"\nenrollment_group_key = \"keyd:b\"\n"
            ),
            "key `provisioning.attestation.enrollment_group_key`: give symmetric_key",
        ),
        (
            format!("{BASE}{dps}[provisioning.attestation]\nmethod = \"tpm\"\n"),
            "key `provisioning.attestation.registration_id`: required",
        ),
        (
            format!(
                "{BASE}{dps}[provisioning.attestation]\nmethod = \"x509\"\nidentity_cert = \"c\"\nidentity_pk = \"k\"\nenrollment_group_key = \"keyd:b\"\n"
            ),
            "key `provisioning.attestation.enrollment_group_key`: not used",
        ),
    ] {
        let e = parse(&text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn the_dps_example_loads() {
    let c = parse(include_str!("../../../../examples/dps/config.toml")).unwrap();
    assert_eq!(c.provisioning.source, ProvisioningSource::Dps);
    assert_eq!(
        c.provisioning.auth,
        DeviceAuth::Dps {
            global_endpoint: "https://global.azure-devices-provisioning.net".into(),
            id_scope: "0ne00AB12CD".into(),
            registration_id: Some("line3-gateway".into()),
            attestation: DpsAttestation::SymmetricKey(edgesec_pki::config::KeySource::File(
                "/etc/edgesec/dps-key".into()
            )),
        }
    );
    assert_eq!(c.cloud.retries, 2);
}
