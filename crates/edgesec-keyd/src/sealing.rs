//! The software store's master key, sealed to the TPM (`[store] seal_master_key = "tpm"`).
//!
//! ```text
//! state_dir/master.sealed        the key, sealed under PolicyOR(PolicyPCR(measurement PCR),
//!                                PolicySecret(owner)) (see edgesec_keys::tpm::seal)
//! state_dir/master.sealed.json   what keyd measured when it sealed: to name what changed
//! ```
//!
//! At start keyd resets the measurement PCR, extends its own executable and config, and only
//! then unseals: a different keyd binary or config gives another PCR value, the TPM refuses,
//! and keyd refuses to serve, naming the measurement that changed. A plain `master.key` found
//! on the first sealed start is sealed and then wiped.
//!
//! After a legitimate update the operator runs the *new* binary with the new config:
//! `edgesec-keyd --config FILE reseal --confirm` (as root or as keyd's own user, with keyd
//! stopped). It opens the key through the owner branch of the policy and seals it again to the
//! PCR value the new binary and config give.
//!
//! The owner branch opens the key for whoever holds the owner hierarchy's authorization. That
//! value is empty on most TPMs, and then anyone who can reach the TPM (root, the tss group, a
//! replaced keyd binary) opens the key without any PCR match. So keyd refuses to seal (first
//! sealed start, reseal) while the TPM reports no owner authorization (TPMA_PERMANENT
//! .ownerAuthSet), and presents the value from `[tpm] owner_auth_file` in PolicySecret.
//! `[tpm] allow_empty_owner_auth = true` seals anyway, for development only; every start with
//! a sealed store and an empty owner authorization logs a warning.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use edgesec_integrity::{Event, hex};
use edgesec_keys::tpm::Tpm;
use edgesec_keys::tpm::seal::SealError;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::measure::Measurements;

const SEALED: &str = "master.sealed";
const RECORD: &str = "master.sealed.json";

/// What an empty owner authorization means for the sealed store.
const EMPTY_OWNER_RISK: &str = "the TPM's owner hierarchy has no authorization value, so anyone \
    who can reach the TPM (root, the tss group, a replaced keyd binary) can unseal the store's \
    master key through the owner branch of its policy, with no PCR match";

/// How to give the owner hierarchy a value and keyd the file holding it.
const OWNER_AUTH_FIX: &str = "set an owner password (a long random one: the TPM does not lock \
    out wrong owner values), e.g. `tpm2_changeauth -c owner NEWPASS`, put it in a file only \
    keyd's user can read (chmod 600) and name that file in keyd.toml: [tpm] owner_auth_file = \
    \"PATH\"";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealRecord {
    pcr: u8,
    /// The PCR value the key is sealed to, hex.
    value: String,
    /// keyd's own events when it was sealed.
    measurements: Vec<Expected>,
    sealed_at: String,
}

#[derive(Serialize, Deserialize)]
struct Expected {
    kind: String,
    name: String,
    measurement: String,
}

fn what(kind: &str) -> &str {
    match kind {
        "keyd-executable" => "the keyd executable",
        "keyd-config" => "keyd's config file",
        other => other,
    }
}

/// The master key: unsealed, or (first sealed start) taken from `master.key` or made by the
/// TPM, then sealed.
pub fn open_master(
    config: &Config,
    tpm: &Tpm,
    m: &Measurements,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let dir = &config.state_dir;
    edgesec_state::ensure_private_dir(dir).map_err(|e| e.to_string())?;
    let sealed_path = dir.join(SEALED);
    if sealed_path.exists() {
        check_owner_auth(config, tpm, false)?;
        let sealed = std::fs::read(&sealed_path)
            .map_err(|e| format!("cannot read {}: {e}", sealed_path.display()))?;
        return match tpm.unseal(&sealed, &[m.pcr()]) {
            Ok(k) => Ok(k),
            Err(SealError::PcrMismatch) => Err(refusal(config, m)),
            Err(e) => Err(format!("cannot unseal the store's master key: {e}")),
        };
    }
    // Before any key is made or read: nothing is sealed under a policy anyone can satisfy.
    check_owner_auth(config, tpm, true)?;
    let plain = dir.join("master.key");
    let key = if plain.exists() {
        let k = Zeroizing::new(
            std::fs::read(&plain).map_err(|e| format!("cannot read {}: {e}", plain.display()))?,
        );
        if k.len() != 32 {
            return Err(format!("{} is not a 32-byte master key", plain.display()));
        }
        k
    } else {
        Zeroizing::new(tpm.random(32).map_err(|e| e.to_string())?)
    };
    seal_and_record(config, tpm, m, &key)?;
    if plain.exists() {
        let _ = std::fs::write(&plain, [0u8; 32]);
        edgesec_state::remove(&plain)
            .map_err(|e| format!("cannot remove {}: {e}", plain.display()))?;
        tracing::info!("the plain master.key was sealed to the TPM and removed");
    } else {
        tracing::info!("a new master key was made and sealed to the TPM");
    }
    Ok(key)
}

fn seal_and_record(config: &Config, tpm: &Tpm, m: &Measurements, key: &[u8]) -> Result<(), String> {
    let pcr = m.pcr();
    let sealed = tpm
        .seal(key, &[pcr])
        .map_err(|e| seal_error(config, "cannot seal the store's master key", e))?;
    let value = tpm.pcr_read(&[pcr]).map_err(|e| e.to_string())?[0].1;
    let record = SealRecord {
        pcr,
        value: hex(&value),
        measurements: own(&m.events())
            .map(|e| Expected {
                kind: e.kind.clone(),
                name: e.name.clone(),
                measurement: e.measurement.clone(),
            })
            .collect(),
        sealed_at: crate::measure::log::now_rfc3339(),
    };
    let dir = &config.state_dir;
    edgesec_state::write_replace(&dir.join(SEALED), &sealed, 0o600).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&record).expect("serializable");
    edgesec_state::write_replace(&dir.join(RECORD), &json, 0o600).map_err(|e| e.to_string())
}

/// Checks the owner hierarchy's authorization before sealing (`sealing`) or at a start with a
/// sealed store: refuses to seal under an empty one (unless allowed for development), and warns
/// whenever the sealed store can be opened by anyone with TPM access.
fn check_owner_auth(config: &Config, tpm: &Tpm, sealing: bool) -> Result<(), String> {
    let set = tpm
        .owner_auth_set()
        .map_err(|e| format!("cannot read the TPM's owner authorization state: {e}"))?;
    let file = config.tpm.owner_auth_file.as_ref();
    match (set, file) {
        (true, Some(_)) => Ok(()),
        // The PCR branch needs no owner value; only sealing does.
        (true, None) if !sealing => Ok(()),
        (true, None) => Err(
            "cannot seal the store's master key: the TPM's owner hierarchy has an authorization \
             value but keyd was given none: name a file holding it (mode 0600, keyd's user) in \
             keyd.toml: [tpm] owner_auth_file = \"PATH\""
                .into(),
        ),
        (false, Some(f)) if sealing => Err(format!(
            "cannot seal the store's master key: [tpm] owner_auth_file ({}) is set but the TPM's \
             owner hierarchy has no authorization value (was the TPM cleared?): set it to the \
             file's value, e.g. `tpm2_changeauth -c owner file:{}` (the file without a trailing \
             newline)",
            f.display(),
            f.display()
        )),
        (false, _) if sealing && !config.tpm.allow_empty_owner_auth => Err(format!(
            "refusing to seal the store's master key: {EMPTY_OWNER_RISK}. Fix: {OWNER_AUTH_FIX}. \
             (For development only, [tpm] allow_empty_owner_auth = true seals anyway.)"
        )),
        (false, _) => {
            tracing::warn!(
                allow_empty_owner_auth = config.tpm.allow_empty_owner_auth,
                "the sealed key store can be opened by anyone with TPM access: {EMPTY_OWNER_RISK}; \
                 {OWNER_AUTH_FIX}"
            );
            Ok(())
        }
    }
}

/// A failed seal or owner-branch unseal, for the operator: a refused owner authorization names
/// the file it came from.
fn seal_error(config: &Config, what: &str, e: SealError) -> String {
    match (&e, &config.tpm.owner_auth_file) {
        (SealError::BadOwnerAuth { .. }, Some(f)) => format!(
            "{what}: {e}. Check [tpm] owner_auth_file {}: it must hold the owner hierarchy's \
             value, the one set with `tpm2_changeauth -c owner` (keyd ignores one trailing \
             newline; `file:PATH` in tpm2-tools does not). Do not retry with guessed values: a \
             TPM that counts authorization failures locks out after a few",
            f.display()
        ),
        (SealError::BadOwnerAuth { .. }, None) => format!(
            "{what}: {e}. The TPM's owner hierarchy has a value keyd was not given: set [tpm] \
             owner_auth_file"
        ),
        _ => format!("{what}: {e}"),
    }
}

fn own(events: &[Event]) -> impl Iterator<Item = &Event> {
    events.iter().filter(|e| e.kind.starts_with("keyd-"))
}

/// Why keyd refuses to serve: which of its measurements differ from those at seal time.
fn refusal(config: &Config, m: &Measurements) -> String {
    let record: Option<SealRecord> = std::fs::read(config.state_dir.join(RECORD))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let now = m.events();
    let mut changes = Vec::new();
    if let Some(r) = &record {
        for e in own(&now) {
            match r.measurements.iter().find(|x| x.kind == e.kind) {
                Some(x) if x.measurement == e.measurement => {}
                Some(x) => changes.push(format!(
                    "{} changed: sealed to {} ({}), now {} ({})",
                    what(&e.kind),
                    x.measurement,
                    x.name,
                    e.measurement,
                    e.name
                )),
                None => changes.push(format!(
                    "{} was not measured when the key was sealed",
                    what(&e.kind)
                )),
            }
        }
    }
    if changes.is_empty() {
        changes.push(format!(
            "PCR {} differs from the value the key was sealed to (another program may have extended it)",
            m.pcr()
        ));
    }
    format!(
        "the sealed key store refuses to open: {}. If this change is legitimate, stop keyd and \
         re-seal as root or keyd's user with the new binary and config: edgesec-keyd --config {} \
         reseal --confirm",
        changes.join("; "),
        config.file.display()
    )
}

/// `edgesec-keyd --config FILE reseal --confirm`: seals the master key again to the PCR value
/// this binary and this config give. Returns a summary for the operator.
pub fn reseal(config: &Config, confirm: bool) -> Result<String, String> {
    if !confirm {
        return Err("re-sealing accepts the current keyd binary and config as trusted; run again with --confirm".into());
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(&config.state_dir)
        .map_err(|e| format!("cannot read {}: {e}", config.state_dir.display()))?
        .uid();
    if euid != 0 && euid != owner {
        return Err(format!(
            "only root or keyd's own user (uid {owner}, the owner of {}) may re-seal",
            config.state_dir.display()
        ));
    }
    let sealed_path = config.state_dir.join(SEALED);
    let sealed = std::fs::read(&sealed_path).map_err(|e| {
        format!(
            "nothing to re-seal: cannot read {}: {e}",
            sealed_path.display()
        )
    })?;
    let _lock = edgesec_state::DirLock::acquire(&config.state_dir)
        .map_err(|e| format!("{e}: is keyd running? Stop it before re-sealing"))?;
    let tpm = config.tpm.connect()?;
    check_owner_auth(config, &tpm, true)?;
    let m = Measurements::start(config, Some(tpm.clone()))?;
    let key = tpm
        .unseal_as_owner(&sealed)
        .map_err(|e| seal_error(config, "cannot open the sealed key", e))?;
    seal_and_record(config, &tpm, &m, &key)?;
    let list: Vec<String> = own(&m.events())
        .map(|e| format!("{} {} = {}", what(&e.kind), e.name, e.measurement))
        .collect();
    Ok(format!("re-sealed the master key to: {}", list.join("; ")))
}

/// True when a sealed master key exists in `dir`.
pub fn is_sealed(dir: &Path) -> bool {
    dir.join(SEALED).exists()
}
