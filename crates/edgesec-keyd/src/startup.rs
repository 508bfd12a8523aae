//! keyd's start, in order: connect the TPM (when one is used) → reset the measurement PCR and
//! measure keyd's own executable and config → unseal the soft store's master key (when it is
//! sealed) → open the key store. Serving starts only after all of this succeeded.

use std::sync::Arc;

use edgesec_keys::KeyStore;

use crate::config::Config;
use crate::measure::Measurements;
use crate::store::{Backend, Extras};

/// Whether this config needs a TPM.
pub fn uses_tpm(config: &Config) -> bool {
    config.tpm.configured || config.store.uses(Backend::Tpm) || config.store.seal_master_key
}

/// Opens everything keyd serves from.
pub fn open(config: &Config) -> Result<(Arc<dyn KeyStore>, Arc<Measurements>), String> {
    let tpm = if uses_tpm(config) {
        Some(config.tpm.connect()?)
    } else {
        None
    };
    let measurements = Arc::new(Measurements::start(config, tpm.clone())?);
    let soft_master = match (&tpm, config.store.seal_master_key) {
        (Some(t), true) => Some(crate::sealing::open_master(config, t, &measurements)?),
        _ => None,
    };
    let store = crate::store::open_with(
        &config.store,
        &config.state_dir,
        Extras { tpm, soft_master },
    )?;
    Ok((store, measurements))
}
