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
            format!("{base}[provisioning]\nsource = \"dps\"\n"),
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
            "key `agent.type`",
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
