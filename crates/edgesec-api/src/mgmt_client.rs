//! A client of the management API, for `edgesec-agent` and the `edgesec` CLI.

use std::path::PathBuf;

use bytes::Bytes;
use edgesec_http::{ClientError, NO_BODY, UdsClient};
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::LATEST_API_VERSION;
use crate::mgmt::*;

pub struct MgmtClient {
    http: UdsClient,
}

/// A module name as one URL path segment (`$edgeAgent` becomes `%24edgeAgent`).
fn seg(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

fn with_version(path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}api-version={LATEST_API_VERSION}")
}

impl MgmtClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        MgmtClient {
            http: UdsClient::new(socket),
        }
    }

    pub async fn list_modules(&self) -> Result<Vec<ModuleDetails>, ClientError> {
        let l: ModuleList = self.http.get_json(&with_version("/modules")).await?;
        Ok(l.modules)
    }

    pub async fn get_module(&self, name: &str) -> Result<ModuleDetails, ClientError> {
        self.http
            .get_json(&with_version(&format!("/modules/{}", seg(name))))
            .await
    }

    pub async fn create_module(&self, spec: &ModuleSpec) -> Result<ModuleDetails, ClientError> {
        self.http.post_json(&with_version("/modules"), spec).await
    }

    pub async fn update_module(
        &self,
        spec: &ModuleSpec,
        start: bool,
    ) -> Result<ModuleDetails, ClientError> {
        let path = with_version(&format!("/modules/{}?start={start}", seg(&spec.name)));
        self.http.request_json(Method::PUT, &path, Some(spec)).await
    }

    pub async fn delete_module(&self, name: &str) -> Result<(), ClientError> {
        self.http
            .request_json(
                Method::DELETE,
                &with_version(&format!("/modules/{}", seg(name))),
                NO_BODY,
            )
            .await
    }

    /// `action` is `start`, `stop` or `restart`.
    pub async fn module_action(&self, name: &str, action: &str) -> Result<(), ClientError> {
        let path = with_version(&format!("/modules/{}/{action}", seg(name)));
        self.http.request_json(Method::POST, &path, NO_BODY).await
    }

    /// The raw log text; `query` holds `tail=..&since=..` etc. (without api-version).
    pub async fn logs(&self, name: &str, query: &str) -> Result<Bytes, ClientError> {
        let mut path = format!("/modules/{}/logs", seg(name));
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let (status, body) = self
            .http
            .request(Method::GET, &with_version(&path), NO_BODY)
            .await?;
        if !status.is_success() {
            return Err(ClientError::api(status, &body));
        }
        Ok(body)
    }

    pub async fn list_identities(&self) -> Result<Vec<Identity>, ClientError> {
        let l: IdentityList = self.http.get_json(&with_version("/identities")).await?;
        Ok(l.identities)
    }

    pub async fn create_identity(&self, module_id: &str) -> Result<Identity, ClientError> {
        let spec = IdentitySpec {
            module_id: module_id.into(),
            managed_by: None,
        };
        self.http
            .post_json(&with_version("/identities"), &spec)
            .await
    }

    pub async fn update_identity(&self, module_id: &str) -> Result<Identity, ClientError> {
        let path = with_version(&format!("/identities/{}", seg(module_id)));
        self.http
            .request_json(Method::PUT, &path, Some(&serde_json::json!({})))
            .await
    }

    pub async fn delete_identity(&self, module_id: &str) -> Result<(), ClientError> {
        let path = with_version(&format!("/identities/{}", seg(module_id)));
        self.http.request_json(Method::DELETE, &path, NO_BODY).await
    }

    pub async fn system_info(&self) -> Result<SystemInfo, ClientError> {
        self.http.get_json(&with_version("/systeminfo")).await
    }

    pub async fn system_resources(&self) -> Result<SystemResources, ClientError> {
        self.http
            .get_json(&with_version("/systeminfo/resources"))
            .await
    }

    /// edgesec's `GET /status`.
    /// `POST /device/reprovision`: provision the device again.
    pub async fn reprovision(&self) -> Result<(), ClientError> {
        self.http
            .request_json(Method::POST, &with_version("/device/reprovision"), NO_BODY)
            .await
    }

    pub async fn status(&self) -> Result<DaemonStatus, ClientError> {
        self.http.get_json(&with_version("/status")).await
    }
}
