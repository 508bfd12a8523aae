//! Module identities in IoT Hub (api-version 2017-11-08-preview), managed as the device:
//! `GET/PUT/DELETE https://{hub}/devices/{deviceId}/modules[/{moduleId}]`, authenticated with
//! a SAS token for `{hub}/devices/{deviceId}` or the device's X.509 client certificate.
//!
//! A module is created without keys to learn its `generationId`; its keys are then set with a
//! second `PUT` (`If-Match: *`). Keys go over the wire only in that `PUT`, from buffers that are
//! zeroized afterwards.

use std::sync::Arc;

use http::Method;
use http::header::{AUTHORIZATION, HeaderName, IF_MATCH};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::CloudError;
use crate::https::{CloudResponse, Endpoint, HttpsClient};
use crate::retry::with_retries;
use crate::sas::{self, Audience, HmacKey};

pub const API_VERSION: &str = "2017-11-08-preview";
const SERVICE: &str = "IoT Hub";

/// How the device authenticates to its hub.
#[derive(Clone)]
pub enum HubAuth {
    Sas(Arc<dyn HmacKey>),
    /// The TLS client certificate of the client.
    X509,
}

/// A module identity as the hub returns it (keys are not kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubModule {
    pub module_id: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub generation_id: String,
    #[serde(default)]
    pub managed_by: Option<String>,
}

/// A module's two SAS keys, base64, wiped on drop.
pub struct ModuleKeys {
    pub primary: Zeroizing<String>,
    pub secondary: Zeroizing<String>,
}

pub struct HubClient {
    http: HttpsClient,
    endpoint: Endpoint,
    hub: String,
    device_id: String,
    auth: HubAuth,
}

fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl HubClient {
    /// `hub` is the host name DPS assigned or the config gives (`name.azure-devices.net`, or
    /// `host:port` for a test hub).
    pub fn new(
        http: HttpsClient,
        hub: &str,
        device_id: &str,
        auth: HubAuth,
    ) -> Result<Self, CloudError> {
        Ok(HubClient {
            endpoint: Endpoint::parse(hub)?,
            http,
            hub: hub.to_owned(),
            device_id: device_id.to_owned(),
            auth,
        })
    }

    pub fn hub(&self) -> &str {
        &self.hub
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    fn path(&self, module: Option<&str>) -> String {
        let device = segment(&self.device_id);
        match module {
            Some(m) => format!(
                "/devices/{device}/modules/{}?api-version={API_VERSION}",
                segment(m)
            ),
            None => format!("/devices/{device}/modules?api-version={API_VERSION}"),
        }
    }

    /// One hub call with retries; a fresh token for each attempt.
    async fn call(
        &self,
        method: Method,
        path: &str,
        extra: &[(HeaderName, String)],
        body: Option<&Value>,
    ) -> Result<CloudResponse, CloudError> {
        with_retries(&self.http.options().retry, "IoT Hub request", || async {
            let mut headers = extra.to_vec();
            if let HubAuth::Sas(k) = &self.auth {
                let audience = Audience::Device {
                    hub: &self.hub,
                    device_id: &self.device_id,
                };
                headers.push((AUTHORIZATION, sas::token(k.as_ref(), audience).await?));
            }
            let r = self
                .http
                .send(method.clone(), &self.endpoint, path, &headers, body)
                .await?;
            if !r.status.is_success() {
                return Err(r.error(SERVICE));
            }
            Ok(r)
        })
        .await
    }

    pub async fn list_modules(&self) -> Result<Vec<HubModule>, CloudError> {
        self.call(Method::GET, &self.path(None), &[], None)
            .await?
            .json(SERVICE)
    }

    /// The module, or `None` when the hub has no such module.
    pub async fn get_module(&self, module_id: &str) -> Result<Option<HubModule>, CloudError> {
        match self
            .call(Method::GET, &self.path(Some(module_id)), &[], None)
            .await
        {
            Ok(r) => r.json(SERVICE).map(Some),
            Err(CloudError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the module without keys; the hub gives it a generation id.
    pub async fn create_module(
        &self,
        module_id: &str,
        managed_by: Option<&str>,
    ) -> Result<HubModule, CloudError> {
        let mut body = json!({ "moduleId": module_id, "deviceId": self.device_id });
        if let Some(m) = managed_by {
            body["managedBy"] = json!(m);
        }
        self.call(Method::PUT, &self.path(Some(module_id)), &[], Some(&body))
            .await?
            .json(SERVICE)
    }

    /// Sets the module's SAS keys (and keeps `managed_by`).
    pub async fn set_module_keys(
        &self,
        module: &HubModule,
        keys: &ModuleKeys,
    ) -> Result<HubModule, CloudError> {
        let mut body = json!({
            "moduleId": module.module_id,
            "deviceId": self.device_id,
            "generationId": module.generation_id,
            "authentication": {
                "type": "sas",
                "symmetricKey": {
                    "primaryKey": keys.primary.as_str(),
                    "secondaryKey": keys.secondary.as_str(),
                }
            }
        });
        if let Some(m) = &module.managed_by {
            body["managedBy"] = json!(m);
        }
        let result = self
            .call(
                Method::PUT,
                &self.path(Some(&module.module_id)),
                &[(IF_MATCH, "*".into())],
                Some(&body),
            )
            .await;
        wipe_keys(&mut body);
        result?.json(SERVICE)
    }

    /// Deletes the module; `Ok(false)` when the hub had no such module.
    pub async fn delete_module(&self, module_id: &str) -> Result<bool, CloudError> {
        match self
            .call(
                Method::DELETE,
                &self.path(Some(module_id)),
                &[(IF_MATCH, "*".into())],
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(CloudError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Overwrites the key strings of a request body before it is dropped.
fn wipe_keys(body: &mut Value) {
    if let Some(Value::Object(k)) = body.pointer_mut("/authentication/symmetricKey") {
        for (_, v) in k.iter_mut() {
            if let Value::String(s) = v {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_strings_are_wiped_from_the_body() {
        let mut b = json!({"authentication":{"type":"sas","symmetricKey":{"primaryKey":"c2VjcmV0","secondaryKey":"b3RoZXI="}}});
        wipe_keys(&mut b);
        assert_eq!(b["authentication"]["symmetricKey"]["primaryKey"], "");
        assert_eq!(b["authentication"]["symmetricKey"]["secondaryKey"], "");
    }

    #[test]
    fn modules_parse_as_the_hub_sends_them() {
        let m: HubModule = serde_json::from_str(
            r#"{"moduleId":"m1","deviceId":"d","generationId":"6372","etag":"x","managedBy":"iotEdge","authentication":{"type":"sas","symmetricKey":{"primaryKey":null,"secondaryKey":null}}}"#,
        )
        .unwrap();
        assert_eq!(m.generation_id, "6372");
        assert_eq!(m.managed_by.as_deref(), Some("iotEdge"));
    }
}
