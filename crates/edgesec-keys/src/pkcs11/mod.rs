//! The PKCS#11 backend: keys on a hardware token (a secure element, an HSM, tpm2-pkcs11; SoftHSM2
//! in tests), used through cryptoki.
//!
//! - The library is loaded at run time and initialised once per process; the token is found by
//!   its **label** (slot numbers are not stable), and the user logs in with the PIN read from a
//!   0600 file (never a command-line argument), kept zeroized in memory for re-login.
//! - A key `id` is a token object pair (or one secret key object) with `CKA_LABEL` = the id and
//!   `CKA_ID` = the first 16 bytes of SHA-256(id). Keys generated here are token objects with
//!   `CKA_SENSITIVE` and without `CKA_EXTRACTABLE`: their private or secret value never leaves
//!   the token. Keys created beforehand (e.g. with `pkcs11-tool`) are *preloaded*: the config maps
//!   a key id to a `pkcs11:` URI (RFC 7512, see [`uri`]).
//! - Sessions come from a small pool ([`session`]); when the token resets, the pool logs in again
//!   and the operation is retried once.
//! - What the token cannot do is not emulated: [`Pkcs11KeyStore::capabilities`] is computed from
//!   the token's mechanism list, and the rest answers "not supported".
//!
//! One file per operation family: `objects.rs` (finding, listing, deleting), `keypair.rs`
//! (generation, import, public keys), `sign.rs`, `symmetric.rs` (HMAC keys, derivation),
//! `aead.rs`, `error.rs` (`CKR_*` to [`KeyError`]).

mod aead;
mod error;
mod keypair;
mod objects;
mod session;
mod sign;
mod symmetric;
pub mod uri;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::Session;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::{
    Capabilities, ImportMaterial, KeyError, KeyId, KeyInfo, KeyPairAlgorithm, KeyRef, KeyStore,
    PublicKey, Result, SignAlgorithm, SignInput, SymmetricUsage,
};
use error::{Fail, describe, needs_relogin, stale_object};
use objects::Entry;
use session::Pool;
use uri::Pkcs11Uri;

/// How keyd reaches its token.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub library: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, as `softhsm2-util --label` set it).
    pub token_label: String,
    /// A file holding the user PIN, readable by its owner only.
    pub pin_file: PathBuf,
    /// Most sessions open at once, besides the one that holds the login.
    pub max_sessions: usize,
    /// Keys created outside edgesec: key id and the `pkcs11:` URI of its object.
    pub preloaded: Vec<(KeyId, String)>,
}

impl Pkcs11Config {
    pub const DEFAULT_MAX_SESSIONS: usize = 8;
}

/// What the token's mechanism list allows; read once at open.
#[derive(Clone, Copy, Debug, Default)]
struct Mechanisms {
    ec: bool,
    ec_p384: bool,
    ed25519: bool,
    rsa_2048: bool,
    rsa_4096: bool,
    rsa_pkcs: bool,
    sha256_rsa_pkcs: bool,
    rsa_pss: bool,
    sha256_rsa_pss: bool,
    hmac: bool,
    /// The shortest HMAC-SHA256 key the token takes, in bytes.
    hmac_min_key: usize,
    aes_gcm: bool,
}

/// The PKCS#11 backend of [`KeyStore`].
pub struct Pkcs11KeyStore {
    pool: Pool,
    cache: RwLock<HashMap<KeyId, Arc<Entry>>>,
    preloaded: HashMap<KeyId, Pkcs11Uri>,
    /// Held while checking for and creating a key, so concurrent creators make one key.
    create_lock: Mutex<()>,
    mechs: Mechanisms,
}

/// Each library is loaded and initialised once per process, however many stores use it.
static LIBRARIES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

fn load_library(path: &Path) -> Result<Pkcs11> {
    if !path.exists() {
        return Err(KeyError::Backend(format!(
            "PKCS#11 library {} does not exist (is the token's package installed?)",
            path.display()
        )));
    }
    let key = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut libs = LIBRARIES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, ctx)) = libs.iter().find(|(p, _)| *p == key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        KeyError::Backend(format!(
            "cannot load PKCS#11 library {}: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyError::Backend(format!(
                "PKCS#11 library {} did not initialise: {}",
                path.display(),
                describe(&e)
            )));
        }
    }
    libs.push((key, ctx.clone()));
    Ok(ctx)
}

/// Reads the PIN file, refusing one that anyone but its owner (keyd's user) could read.
fn read_pin(path: &Path) -> Result<AuthPin> {
    edgesec_state::check_private(path, false)
        .map_err(|e| KeyError::Backend(format!("PKCS#11 PIN file: {}", e.0)))?;
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyError::Backend(format!("cannot read PIN file {}: {e}", path.display()))
        })?);
    let pin = text.trim_end_matches(['\n', '\r']);
    if pin.is_empty() {
        return Err(KeyError::Backend(format!(
            "PIN file {} is empty",
            path.display()
        )));
    }
    Ok(AuthPin::new(pin.into()))
}

/// Asks the token about each mechanism edgesec uses (`C_GetMechanismInfo`; a mechanism it
/// lacks answers `CKR_MECHANISM_INVALID`). Not `C_GetMechanismList`: cryptoki logs an error for
/// every listed mechanism it has no name for, which on SoftHSM is dozens at each start.
fn mechanisms(ctx: &Pkcs11, slot: cryptoki::slot::Slot) -> Mechanisms {
    let sizes = |m: MechanismType| {
        ctx.get_mechanism_info(slot, m)
            .ok()
            .map(|i| (i.min_key_size(), i.max_key_size()))
    };
    let has = |m: MechanismType| sizes(m).is_some();
    // Key sizes are in bits for EC and RSA, in bytes for AES and HMAC; 0 means "not said".
    let fits = |m: MechanismType, size: usize| {
        sizes(m).is_some_and(|(lo, hi)| (lo == 0 || lo <= size) && (hi == 0 || size <= hi))
    };
    let rsa_sign = has(MechanismType::RSA_PKCS) || has(MechanismType::SHA256_RSA_PKCS);
    let ec = fits(MechanismType::ECC_KEY_PAIR_GEN, 256) && has(MechanismType::ECDSA);
    let hmac = has(MechanismType::GENERIC_SECRET_KEY_GEN) && has(MechanismType::SHA256_HMAC);
    Mechanisms {
        ec,
        ec_p384: ec && fits(MechanismType::ECC_KEY_PAIR_GEN, 384),
        ed25519: has(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN) && has(MechanismType::EDDSA),
        rsa_2048: rsa_sign && fits(MechanismType::RSA_PKCS_KEY_PAIR_GEN, 2048),
        rsa_4096: rsa_sign && fits(MechanismType::RSA_PKCS_KEY_PAIR_GEN, 4096),
        rsa_pkcs: has(MechanismType::RSA_PKCS),
        sha256_rsa_pkcs: has(MechanismType::SHA256_RSA_PKCS),
        rsa_pss: has(MechanismType::RSA_PKCS_PSS),
        sha256_rsa_pss: has(MechanismType::SHA256_RSA_PKCS_PSS),
        hmac,
        hmac_min_key: sizes(MechanismType::SHA256_HMAC).map_or(1, |(lo, _)| lo.max(1)),
        aes_gcm: fits(MechanismType::AES_KEY_GEN, 32) && has(MechanismType::AES_GCM),
    }
}

impl Pkcs11KeyStore {
    /// Loads the library, finds the token by label, logs in, and checks every preloaded key's
    /// URI. Each failure names what is wrong: the library path, the token label (and the labels
    /// there are), the PIN file, or the URI.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        let library = config.library.display().to_string();
        let ctx = load_library(&config.library)?;
        // Find the token before reading the PIN, so a missing token is reported as such.
        session::find_slot(&ctx, &library, &config.token_label)?;
        let pin = read_pin(&config.pin_file)?;
        let pool = Pool::open(
            ctx,
            config.library.clone(),
            config.token_label.clone(),
            pin,
            config.pin_file.clone(),
            config.max_sessions,
        )?;
        let mechs = mechanisms(pool.context(), pool.slot());
        let mut preloaded = HashMap::new();
        for (id, text) in &config.preloaded {
            let uri = Pkcs11Uri::parse(text)
                .and_then(|u| u.check_preloaded(&config.token_label, &library).map(|_| u))
                .map_err(|e| {
                    KeyError::InvalidInput(format!("preloaded key {id:?} ({text}): {e}"))
                })?;
            preloaded.insert(id.clone(), uri);
        }
        let store = Pkcs11KeyStore {
            pool,
            cache: RwLock::default(),
            preloaded,
            create_lock: Mutex::new(()),
            mechs,
        };
        // A preloaded key that is not on the token is a configuration error: say so at start.
        for id in store.preloaded.keys() {
            store.run("preloaded key lookup", |s| store.entry(s, id).map(|_| ()))?;
        }
        tracing::info!(token = %config.token_label, library = %library, preloaded = store.preloaded.len(), "PKCS#11 token opened");
        Ok(store)
    }

    /// Runs `op` on a pooled session. When the token lost its sessions or login, the pool is
    /// re-opened (logging in again) and `op` runs once more; when a cached object handle went
    /// stale, the cache is dropped and `op` runs once more. Other failures are mapped to
    /// [`KeyError`] with the `CKR_*` code logged.
    pub(crate) fn run<T>(
        &self,
        operation: &str,
        mut op: impl FnMut(&Session) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let seen = self.pool.generation();
            let (result, generation) = match self.pool.take() {
                Ok(lease) => (op(&lease), lease.generation),
                Err(e) => (Err(Fail::Ck(e)), seen),
            };
            match result {
                Err(Fail::Ck(e)) if !retried && (needs_relogin(&e) || stale_object(&e)) => {
                    retried = true;
                    tracing::warn!(token = %self.pool.label(), operation, pkcs11 = %describe(&e), "PKCS#11 session, login or object lost; retrying once");
                    if needs_relogin(&e) {
                        self.pool.reset(generation)?;
                    }
                    self.forget_all();
                }
                other => return other.map_err(|f| f.into_key_error(operation)),
            }
        }
    }
}

impl KeyStore for Pkcs11KeyStore {
    fn capabilities(&self) -> Capabilities {
        let m = &self.mechs;
        let mut key_pair_algorithms = Vec::new();
        for (ok, alg) in [
            (m.ec, KeyPairAlgorithm::EcP256),
            (m.ec_p384, KeyPairAlgorithm::EcP384),
            (m.rsa_2048, KeyPairAlgorithm::Rsa2048),
            (m.rsa_4096, KeyPairAlgorithm::Rsa4096),
            (m.ed25519, KeyPairAlgorithm::Ed25519),
        ] {
            if ok {
                key_pair_algorithms.push(alg);
            }
        }
        let rsa = m.rsa_2048 || m.rsa_4096;
        let mut sign_algorithms = Vec::new();
        for (ok, alg) in [
            (m.ec, SignAlgorithm::EcdsaSha256),
            (m.ec_p384, SignAlgorithm::EcdsaSha384),
            (rsa, SignAlgorithm::RsaPkcs1Sha256),
            (
                rsa && (m.rsa_pss || m.sha256_rsa_pss),
                SignAlgorithm::RsaPssSha256,
            ),
            (m.ed25519, SignAlgorithm::Ed25519),
            (m.hmac, SignAlgorithm::HmacSha256),
        ] {
            if ok {
                sign_algorithms.push(alg);
            }
        }
        let mut symmetric_usages = Vec::new();
        if m.hmac {
            symmetric_usages.push(SymmetricUsage::HmacSha256);
        }
        if m.aes_gcm {
            symmetric_usages.push(SymmetricUsage::Aes256Gcm);
        }
        // Digests are signed with the raw mechanisms: CKM_ECDSA always (this store hashes for
        // it), CKM_RSA_PKCS over a DigestInfo and CKM_RSA_PKCS_PSS for RSA.
        let rsa_digests = m.rsa_pkcs && (m.rsa_pss || !m.sha256_rsa_pss);
        let digest_signing = !key_pair_algorithms.is_empty() && (!rsa || rsa_digests);
        Capabilities {
            backend: "pkcs11".into(),
            key_pair_algorithms,
            sign_algorithms,
            symmetric_usages,
            digest_signing,
            derive: m.hmac,
            export_derived: m.hmac,
            aead: m.aes_gcm,
            import: true,
            delete: true,
            hardware_backed: true,
            keys: Vec::new(),
            backends: Vec::new(),
        }
    }

    fn create_key_pair(&self, id: &KeyId, algorithm: KeyPairAlgorithm) -> Result<KeyInfo> {
        self.create_key_pair_on_token(id, algorithm)
    }

    fn create_symmetric_key(&self, id: &KeyId, usage: SymmetricUsage) -> Result<KeyInfo> {
        self.create_secret_key(id, usage)
    }

    fn key_info(&self, id: &KeyId) -> Result<KeyInfo> {
        let e = self.run("key lookup", |s| self.entry(s, id))?;
        Ok(KeyInfo {
            id: id.clone(),
            kind: e.kind,
        })
    }

    fn public_key(&self, id: &KeyId) -> Result<PublicKey> {
        self.public_key_of(id)
    }

    fn sign(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
    ) -> Result<Vec<u8>> {
        input.check(algorithm)?;
        self.sign_with(key, algorithm, input)
    }

    fn verify(
        &self,
        key: &KeyRef,
        algorithm: SignAlgorithm,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> Result<bool> {
        input.check(algorithm)?;
        self.verify_with(key, algorithm, input, signature)
    }

    fn check_derivable(&self, base: &KeyId) -> Result<()> {
        self.run("derive", |s| self.hmac_entry(s, base).map(|_| ()))
    }

    fn export_derived(&self, base: &KeyId, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.derive_bytes(base, label)
    }

    fn encrypt(&self, key: &KeyRef, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_with(key, plaintext, aad)
    }

    fn decrypt(&self, key: &KeyRef, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt_with(key, ciphertext, aad)
    }

    fn import(&self, id: &KeyId, material: ImportMaterial) -> Result<KeyInfo> {
        self.import_to_token(id, material)
    }

    fn delete(&self, id: &KeyId) -> Result<()> {
        self.destroy(id)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        self.list_keys()
    }
}

#[cfg(test)]
mod tests;
