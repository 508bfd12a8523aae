//! The command line, and the IoT Edge environment edgesecd gives every module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rustls_pki_types::ServerName;

/// A demo module: gets certificates from the workload API and speaks mutual TLS with them.
#[derive(Debug, Parser)]
#[command(name = "edgesec-demo", version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch a server certificate and the trust bundle, then answer mutual-TLS clients.
    Server(ServerArgs),
    /// Fetch an identity certificate and the trust bundle, then ping a server over mutual TLS.
    Client(ClientArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: std::net::SocketAddr,
    /// Common name of the server certificate (also a SAN; clients verify it).
    #[arg(long, default_value = "localhost", value_parser = parse_server_name)]
    pub common_name: String,
    /// Write the certificates received (never the private key) as PEM files into this directory.
    #[arg(long)]
    pub dump_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The server's address, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub connect: String,
    /// The name the server's certificate must hold.
    #[arg(long, default_value = "localhost", value_parser = parse_server_name)]
    pub server_name: String,
    /// Time between pings: `500ms`, `10s`, `1m` (at least 100 ms).
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    pub every: Duration,
    /// Exit after the first successful exchange (code 0), or after `--timeout` without one (code 1).
    #[arg(long)]
    pub once: bool,
    /// With `--once`: how long to keep retrying.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pub timeout: Duration,
    /// Write the certificates received (never the private key) as PEM files into this directory.
    #[arg(long)]
    pub dump_dir: Option<PathBuf>,
}

fn parse_server_name(s: &str) -> Result<String, String> {
    ServerName::try_from(s)
        .map(|_| s.to_owned())
        .map_err(|_| "expected a DNS name or an IP address".to_owned())
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// What edgesecd tells a module about itself through the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEnv {
    /// `IOTEDGE_WORKLOADURI` as given, for messages.
    pub workload_uri: String,
    /// Its socket path.
    pub socket: PathBuf,
    /// `IOTEDGE_MODULEID`.
    pub module_id: String,
    /// `IOTEDGE_MODULEGENERATIONID`: needed for a server certificate only.
    pub generation_id: Option<String>,
    /// `IOTEDGE_APIVERSION`, or the latest version edgesecd speaks.
    pub api_version: String,
}

impl ModuleEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| match std::env::var_os(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| format!("{name} is not valid UTF-8")),
        })
    }

    /// Reads variables through `get`, which answers `Ok(None)` for an unset one.
    pub fn from_lookup(
        get: impl Fn(&str) -> Result<Option<String>, String>,
    ) -> Result<Self, String> {
        let required = |name: &str| -> Result<String, String> {
            match get(name)? {
                Some(v) if !v.is_empty() => Ok(v),
                Some(_) => Err(format!("{name} is empty")),
                None => Err(format!(
                    "{name} is not set; edgesec-demo runs as a module of edgesecd, which sets it"
                )),
            }
        };
        let workload_uri = required("IOTEDGE_WORKLOADURI")?;
        let socket = edgesec_http::parse_unix_uri(&workload_uri)
            .map_err(|e| format!("IOTEDGE_WORKLOADURI: {e}"))?;
        let module_id = required("IOTEDGE_MODULEID")?;
        let generation_id = get("IOTEDGE_MODULEGENERATIONID")?.filter(|g| !g.is_empty());
        let api_version = get("IOTEDGE_APIVERSION")?
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| edgesec_api::LATEST_API_VERSION.to_owned());
        if api_version.contains(['&', '#', ' ', '%']) {
            return Err(format!(
                "IOTEDGE_APIVERSION {api_version:?} is not a version"
            ));
        }
        Ok(ModuleEnv {
            workload_uri,
            socket,
            module_id,
            generation_id,
            api_version,
        })
    }

    /// The generation id, or why there is none.
    pub fn require_generation_id(&self) -> Result<&str, String> {
        self.generation_id.as_deref().ok_or_else(|| {
            "IOTEDGE_MODULEGENERATIONID is not set; a server certificate needs it (edgesecd sets it)"
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<ModuleEnv, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ModuleEnv::from_lookup(|k| Ok(map.get(k).cloned()))
    }

    const FULL: &[(&str, &str)] = &[
        ("IOTEDGE_WORKLOADURI", "unix:///run/mnt/demo%20x.sock"),
        ("IOTEDGE_MODULEID", "demo-server"),
        ("IOTEDGE_MODULEGENERATIONID", "gen-1"),
        ("IOTEDGE_APIVERSION", "2021-12-07"),
    ];

    #[test]
    fn reads_the_module_environment() {
        let e = env(FULL).unwrap();
        assert_eq!(e.socket, PathBuf::from("/run/mnt/demo x.sock"));
        assert_eq!(e.workload_uri, "unix:///run/mnt/demo%20x.sock");
        assert_eq!(e.module_id, "demo-server");
        assert_eq!(e.require_generation_id().unwrap(), "gen-1");
        assert_eq!(e.api_version, "2021-12-07");
    }

    #[test]
    fn defaults_the_api_version_and_tolerates_no_generation() {
        let e = env(&FULL[..2]).unwrap();
        assert_eq!(e.api_version, edgesec_api::LATEST_API_VERSION);
        assert_eq!(e.generation_id, None);
        assert_eq!(
            e.require_generation_id().unwrap_err(),
            "IOTEDGE_MODULEGENERATIONID is not set; a server certificate needs it (edgesecd sets it)"
        );
    }

    #[test]
    fn says_which_variable_is_wrong() {
        assert_eq!(
            env(&FULL[1..]).unwrap_err(),
            "IOTEDGE_WORKLOADURI is not set; edgesec-demo runs as a module of edgesecd, which sets it"
        );
        assert_eq!(
            env(&[FULL[0]]).unwrap_err(),
            "IOTEDGE_MODULEID is not set; edgesec-demo runs as a module of edgesecd, which sets it"
        );
        let bad_uri = env(&[("IOTEDGE_WORKLOADURI", "http://x/y"), FULL[1]]).unwrap_err();
        assert!(
            bad_uri.starts_with("IOTEDGE_WORKLOADURI: invalid socket URI \"http://x/y\""),
            "{bad_uri}"
        );
        let empty = env(&[FULL[0], ("IOTEDGE_MODULEID", "")]).unwrap_err();
        assert_eq!(empty, "IOTEDGE_MODULEID is empty");
        let bad_version = env(&[FULL[0], FULL[1], ("IOTEDGE_APIVERSION", "1&x=2")]).unwrap_err();
        assert_eq!(bad_version, "IOTEDGE_APIVERSION \"1&x=2\" is not a version");
        let not_utf8 = ModuleEnv::from_lookup(|k| Err(format!("{k} is not valid UTF-8")));
        assert_eq!(
            not_utf8.unwrap_err(),
            "IOTEDGE_WORKLOADURI is not valid UTF-8"
        );
    }

    #[test]
    fn parses_server_and_client_arguments() {
        let a = Args::try_parse_from([
            "edgesec-demo",
            "server",
            "--listen",
            "127.0.0.1:9000",
            "--common-name",
            "localhost",
        ])
        .unwrap();
        let Command::Server(s) = a.command else {
            panic!("not server")
        };
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.common_name, "localhost");
        assert_eq!(s.dump_dir, None);

        let a = Args::try_parse_from([
            "edgesec-demo",
            "client",
            "--connect",
            "127.0.0.1:9000",
            "--server-name",
            "10.0.0.1",
            "--every",
            "2s",
            "--once",
        ])
        .unwrap();
        let Command::Client(c) = a.command else {
            panic!("not client")
        };
        assert_eq!(c.connect, "127.0.0.1:9000");
        assert_eq!(c.server_name, "10.0.0.1");
        assert_eq!(c.every, Duration::from_secs(2));
        assert!(c.once);
        assert_eq!(c.timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_arguments_are_explained() {
        let err = |args: &[&str]| {
            let mut all = vec!["edgesec-demo"];
            all.extend_from_slice(args);
            Args::try_parse_from(all).unwrap_err().to_string()
        };
        let e = err(&["client", "--every", "soon"]);
        assert!(
            e.contains("invalid value 'soon' for '--every <EVERY>'"),
            "{e}"
        );
        let e = err(&["client", "--every", "10ms"]);
        assert!(e.contains("must be at least 100ms"), "{e}");
        let e = err(&["client", "--server-name", "not a name"]);
        assert!(e.contains("expected a DNS name or an IP address"), "{e}");
        let e = err(&["server", "--listen", "localhost"]);
        assert!(e.contains("invalid value 'localhost' for '--listen"), "{e}");
        let e = err(&[]);
        assert!(e.contains("Usage"), "{e}");
    }
}
