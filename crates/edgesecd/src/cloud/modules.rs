//! Module identities in the hub, for the management API's identity routes on a hub-connected
//! device. The hub gives each module its generation id; the module's keys are derived in keyd
//! from the device-level key over `<moduleId>:<generationId>:primary|secondary`, exported only
//! to be set in the hub and wiped after. The registry keeps each identity's generation id
//! (never a key), so workload calls and an offline hub still find it.

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgesec_identity::CloudError;
use edgesec_identity::hub::{HubClient, HubModule, ModuleKeys};
use zeroize::Zeroizing;

use super::Cloud;
use crate::config::ReprovisionMode;
use crate::daemon::Daemon;
use crate::registry::IdentityRecord;

impl Cloud {
    /// Runs a hub call. With `dynamic`, a device the hub refuses is provisioned again and the
    /// call made once more.
    pub async fn hub_call<T, F, Fut>(&self, d: &Daemon, call: F) -> Result<T, CloudError>
    where
        F: Fn(Arc<HubClient>) -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let hub = self.hub();
        match call(hub.clone()).await {
            Err(e)
                if e.is_unauthorized()
                    && self.mode() == ReprovisionMode::Dynamic
                    && self.uses_dps() =>
            {
                tracing::warn!(error = %e, "the hub refused the device; provisioning again (auto_reprovisioning_mode = dynamic)");
                d.reprovision_with(self, Some(&hub)).await?;
                call(self.hub()).await
            }
            other => other,
        }
    }
}

impl Daemon {
    /// Provisions again; when the device moved (another hub or device id), the module
    /// identities known locally belong to the old one and are forgotten.
    /// `refused`: see [`Cloud::reprovision`].
    pub async fn reprovision_with(
        &self,
        cloud: &Cloud,
        refused: Option<&Arc<HubClient>>,
    ) -> Result<(), CloudError> {
        let (before, after) = cloud.reprovision(refused).await?;
        if (before.hub, before.device_id) != (after.hub.clone(), after.device_id.clone()) {
            tracing::info!(hub = %after.hub, device = %after.device_id, "the device moved; forgetting its old module identities");
            let names: Vec<String> = self
                .registry
                .update(|r| Ok(std::mem::take(&mut r.identities).into_keys().collect()))
                .await
                .map_err(|e| CloudError::Setup(format!("cannot update the registry: {e}")))?;
            for n in names {
                self.identities.forget(&n);
            }
        }
        Ok(())
    }

    /// Creates the module in the hub (or takes the existing one), sets its derived keys there
    /// and records its generation id.
    pub async fn create_hub_identity(
        &self,
        cloud: &Cloud,
        module_id: &str,
        managed_by: &str,
    ) -> Result<IdentityRecord, CloudError> {
        let module = cloud
            .hub_call(self, |hub| async move {
                match hub.get_module(module_id).await? {
                    Some(m) => Ok(m),
                    None => hub.create_module(module_id, Some(managed_by)).await,
                }
            })
            .await?;
        self.set_hub_keys(cloud, module).await
    }

    /// The identity as the hub has it now, with its keys set again (they are derived, so this
    /// is idempotent); `None` when the hub has no such module.
    pub async fn refresh_hub_identity(
        &self,
        cloud: &Cloud,
        module_id: &str,
    ) -> Result<Option<IdentityRecord>, CloudError> {
        let found = cloud
            .hub_call(self, |hub| async move { hub.get_module(module_id).await })
            .await?;
        match found {
            Some(m) => self.set_hub_keys(cloud, m).await.map(Some),
            None => Ok(None),
        }
    }

    async fn set_hub_keys(
        &self,
        cloud: &Cloud,
        mut module: HubModule,
    ) -> Result<IdentityRecord, CloudError> {
        if module.generation_id.is_empty() {
            return Err(CloudError::Protocol(format!(
                "the hub gave module {:?} no generation id",
                module.module_id
            )));
        }
        let keys = self
            .module_keys(&module.module_id, &module.generation_id)
            .await?;
        if module.managed_by.is_none() {
            module.managed_by = Some("iotedge".into());
        }
        let module = &module;
        let keys = &keys;
        let updated = cloud
            .hub_call(self, |hub| async move {
                hub.set_module_keys(module, keys).await
            })
            .await?;
        let record = IdentityRecord {
            module_id: updated.module_id.clone(),
            generation_id: module.generation_id.clone(),
            managed_by: module.managed_by.clone().unwrap_or_default(),
        };
        let r = record.clone();
        self.registry
            .update(move |reg| {
                reg.identities.insert(r.module_id.clone(), r);
                Ok(())
            })
            .await
            .map_err(|e| CloudError::Setup(format!("cannot update the registry: {e}")))?;
        self.identities.forget(&record.module_id);
        Ok(record)
    }

    /// The module's primary and secondary keys, derived and exported from keyd (wiped on drop).
    async fn module_keys(
        &self,
        module_id: &str,
        generation_id: &str,
    ) -> Result<ModuleKeys, CloudError> {
        let keys_err = |e: String| CloudError::Keys(format!("module key for {module_id}: {e}"));
        let primary = self
            .identities
            .module_key(module_id, generation_id)
            .await
            .map_err(keys_err)?;
        let secondary = self
            .identities
            .module_secondary_key(module_id, generation_id)
            .await
            .map_err(keys_err)?;
        let export = |handle: String| async move {
            let bytes = self
                .identities
                .keyd()
                .export_derived(&handle)
                .await
                .map_err(|e| keys_err(format!("keyd did not export it: {e}")))?;
            Ok::<_, CloudError>(Zeroizing::new(STANDARD.encode(&*bytes)))
        };
        Ok(ModuleKeys {
            primary: export(primary).await?,
            secondary: export(secondary).await?,
        })
    }

    /// Deletes the module in the hub and forgets it here; `false` when neither knew it.
    pub async fn delete_hub_identity(
        &self,
        cloud: &Cloud,
        module_id: &str,
    ) -> Result<bool, CloudError> {
        let in_hub = cloud
            .hub_call(
                self,
                |hub| async move { hub.delete_module(module_id).await },
            )
            .await?;
        let local = self
            .registry
            .update(|r| Ok(r.identities.remove(module_id)))
            .await
            .map_err(|e| CloudError::Setup(format!("cannot update the registry: {e}")))?;
        self.identities.forget(module_id);
        Ok(in_hub || local.is_some())
    }

    /// The hub's module identities (the registry's when the hub cannot be reached).
    pub async fn list_hub_identities(
        &self,
        cloud: &Cloud,
    ) -> Result<Vec<IdentityRecord>, CloudError> {
        match cloud
            .hub_call(self, |hub| async move { hub.list_modules().await })
            .await
        {
            Ok(modules) => Ok(modules
                .into_iter()
                .map(|m| IdentityRecord {
                    module_id: m.module_id,
                    generation_id: m.generation_id,
                    managed_by: m.managed_by.unwrap_or_default(),
                })
                .collect()),
            Err(e) if e.is_network() => {
                tracing::warn!(error = %e, "the hub is unreachable; listing the module identities known locally");
                Ok(self
                    .registry
                    .read()
                    .await
                    .identities
                    .values()
                    .cloned()
                    .collect())
            }
            Err(e) => Err(e),
        }
    }
}
