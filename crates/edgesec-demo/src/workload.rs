//! The three workload API calls the demo makes, with errors that say what failed and where.

use std::time::Duration;

use edgesec_api::workload::{CertificateResponse, ServerCertificateRequest, TrustBundleResponse};
use edgesec_http::{ClientError, ClientOptions, NO_BODY, UdsClient, encode_path_segment};
use http::Method;

use crate::cli::ModuleEnv;

/// A client of this module's workload socket.
#[derive(Clone)]
pub struct Workload {
    client: UdsClient,
    env: ModuleEnv,
}

impl Workload {
    pub fn new(env: &ModuleEnv) -> Self {
        let options = ClientOptions {
            timeout: Duration::from_secs(30),
            max_connections: 2,
            ..ClientOptions::default()
        };
        Workload {
            client: UdsClient::with_options(env.socket.clone(), options),
            env: env.clone(),
        }
    }

    fn module(&self) -> String {
        encode_path_segment(&self.env.module_id)
    }

    /// `POST /modules/{id}/genid/{genid}/certificate/server`.
    pub async fn server_cert(&self, common_name: &str) -> Result<CertificateResponse, String> {
        let what = format!("a server certificate for {common_name}");
        let genid = self.env.require_generation_id()?;
        let path = format!(
            "/modules/{}/genid/{}/certificate/server?api-version={}",
            self.module(),
            encode_path_segment(genid),
            self.env.api_version
        );
        let body = ServerCertificateRequest {
            common_name: common_name.to_owned(),
            expiration: None,
        };
        self.client
            .post_json(&path, &body)
            .await
            .map_err(|e| self.failed(&what, &e))
    }

    /// `POST /modules/{id}/certificate/identity`.
    pub async fn identity_cert(&self) -> Result<CertificateResponse, String> {
        let path = format!(
            "/modules/{}/certificate/identity?api-version={}",
            self.module(),
            self.env.api_version
        );
        self.client
            .request_json(Method::POST, &path, NO_BODY)
            .await
            .map_err(|e| self.failed("an identity certificate", &e))
    }

    /// `GET /trust-bundle`: the PEM certificates to trust.
    pub async fn trust_bundle(&self) -> Result<String, String> {
        let path = format!("/trust-bundle?api-version={}", self.env.api_version);
        let bundle: TrustBundleResponse = self
            .client
            .get_json(&path)
            .await
            .map_err(|e| self.failed("the trust bundle", &e))?;
        Ok(bundle.certificate)
    }

    fn failed(&self, what: &str, e: &ClientError) -> String {
        failure_message(what, &self.env.workload_uri, e)
    }
}

/// "cannot fetch WHAT from URI: REASON", where REASON leaves out what the URI already says.
pub fn failure_message(what: &str, uri: &str, e: &ClientError) -> String {
    let reason = match e {
        ClientError::Connect { source, .. } => io_reason(source),
        other => other.to_string(),
    };
    format!("cannot fetch {what} from {uri}: {reason}")
}

/// An I/O error's text without std's " (os error N)" suffix, first letter in lower case.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(cut)) => &text[..cut],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn env(socket: &std::path::Path, genid: Option<&str>) -> ModuleEnv {
        ModuleEnv {
            workload_uri: edgesec_http::unix_uri(socket),
            socket: socket.to_owned(),
            module_id: "demo".into(),
            generation_id: genid.map(str::to_owned),
            api_version: "2022-08-03".into(),
        }
    }

    #[test]
    fn messages_name_what_where_and_why() {
        let refused = ClientError::Connect {
            path: "/run/w.sock".into(),
            source: std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(
            failure_message("the trust bundle", "unix:///run/w.sock", &refused),
            "cannot fetch the trust bundle from unix:///run/w.sock: connection refused"
        );
        let forbidden = ClientError::api(StatusCode::FORBIDDEN, br#"{"message":"forbidden"}"#);
        assert_eq!(
            failure_message("an identity certificate", "unix:///w", &forbidden),
            "cannot fetch an identity certificate from unix:///w: 403 Forbidden: forbidden"
        );
    }

    #[tokio::test]
    async fn a_missing_socket_is_reported_for_each_call() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let uri = edgesec_http::unix_uri(&socket);
        let w = Workload::new(&env(&socket, Some("g1")));
        assert_eq!(
            w.trust_bundle().await.unwrap_err(),
            format!("cannot fetch the trust bundle from {uri}: no such file or directory")
        );
        assert_eq!(
            w.identity_cert().await.unwrap_err(),
            format!("cannot fetch an identity certificate from {uri}: no such file or directory")
        );
        assert_eq!(
            w.server_cert("localhost").await.unwrap_err(),
            format!(
                "cannot fetch a server certificate for localhost from {uri}: no such file or directory"
            )
        );
        let no_gen = Workload::new(&env(&socket, None));
        assert!(
            no_gen
                .server_cert("localhost")
                .await
                .unwrap_err()
                .starts_with("IOTEDGE_MODULEGENERATIONID is not set")
        );
    }

    #[tokio::test]
    async fn sends_the_iot_edge_paths() {
        use edgesec_http::{Peer, Request, ServerLimits, bind_unix_socket, full_body, serve};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("w.sock");
        let listener = bind_unix_socket(&socket, 0o600, None).unwrap();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let handler = std::sync::Arc::new(move |_: Peer, req: Request| {
            let seen = seen_tx.clone();
            async move {
                let body = String::from_utf8_lossy(req.body()).into_owned();
                let _ = seen.send(format!("{} {} {}", req.method(), req.uri(), body));
                let json = r#"{"certificate":"PEM"}"#;
                http::Response::new(full_body(json))
            }
        });
        tokio::spawn(serve(
            listener,
            ServerLimits::default(),
            handler,
            std::future::pending(),
        ));
        let mut e = env(&socket, Some("g/1"));
        e.module_id = "$demo".into();
        let w = Workload::new(&e);
        assert_eq!(w.trust_bundle().await.unwrap(), "PEM");
        let _ = w.identity_cert().await; // the fake answer is not a certificate response
        let _ = w.server_cert("localhost").await;
        let mut seen = Vec::new();
        while let Ok(line) = seen_rx.try_recv() {
            seen.push(line);
        }
        assert_eq!(
            seen,
            [
                "GET /trust-bundle?api-version=2022-08-03 ",
                "POST /modules/%24demo/certificate/identity?api-version=2022-08-03 ",
                "POST /modules/%24demo/genid/g%2F1/certificate/server?api-version=2022-08-03 \
                 {\"commonName\":\"localhost\"}",
            ]
        );
    }
}
