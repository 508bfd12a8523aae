//! Tests against SoftHSM2. The test process points SoftHSM at a private token directory
//! (`SOFTHSM2_CONF`) and each test initialises its own token there, through the library itself,
//! so tests share no state. They skip when SoftHSM is not installed, except in CI.

mod ops;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use super::*;

const LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The token directory of this test process, once SoftHSM is set up; `None` to skip.
fn softhsm() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !Path::new(LIBRARY).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "SoftHSM2 ({LIBRARY}) is required in CI but is not installed"
            );
            eprintln!("skipping: SoftHSM2 is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        // SAFETY: set once, before this process loads SoftHSM, which reads it in C_Initialize;
        // no other test reads the environment.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        Some(dir)
    })
    .as_deref()
}

/// A fresh token labelled `label` with user PIN 1234, and a config for it (the PIN file is in
/// the returned directory). `None` when SoftHSM is missing.
fn token(label: &str) -> Option<(tempfile::TempDir, Pkcs11Config)> {
    static INIT: Mutex<()> = Mutex::new(());
    softhsm()?;
    let _one_at_a_time = INIT.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = load_library(Path::new(LIBRARY)).unwrap();
    let free = ctx
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| !ctx.get_token_info(*s).unwrap().token_initialized())
        .expect("SoftHSM always has a free slot");
    let so = AuthPin::new("5678".into());
    ctx.init_token(free, &so, label).unwrap();
    let slot = session::find_slot(&ctx, LIBRARY, label).unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&so)).unwrap();
    s.init_pin(&AuthPin::new("1234".into())).unwrap();
    s.logout().unwrap();
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "1234\n").unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = Pkcs11Config {
        library: LIBRARY.into(),
        token_label: label.into(),
        pin_file,
        max_sessions: 4,
        preloaded: Vec::new(),
    };
    Some((dir, config))
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn stored(s: &str) -> KeyRef {
    KeyRef::Stored(id(s))
}

fn open_err(config: &Pkcs11Config) -> String {
    Pkcs11KeyStore::open(config)
        .err()
        .expect("open must fail")
        .to_string()
}

#[test]
fn softhsm_capabilities_are_reported_as_they_are() {
    let Some((_d, config)) = token("caps") else {
        return;
    };
    let s = Pkcs11KeyStore::open(&config).unwrap();
    let caps = s.capabilities();
    eprintln!("{}", serde_json::to_string_pretty(&caps).unwrap());
    assert_eq!(caps.backend, "pkcs11");
    // SoftHSM 2.6 with OpenSSL has every mechanism edgesec uses, Ed25519 included.
    assert_eq!(caps.key_pair_algorithms, KeyPairAlgorithm::ALL);
    assert_eq!(caps.sign_algorithms, SignAlgorithm::ALL);
    assert_eq!(
        caps.symmetric_usages,
        [SymmetricUsage::HmacSha256, SymmetricUsage::Aes256Gcm]
    );
    assert!(caps.digest_signing && caps.derive && caps.export_derived && caps.aead);
    assert!(caps.import && caps.delete && caps.hardware_backed);
    assert_eq!(s.mechs.hmac_min_key, 32);
}

#[test]
fn start_errors_name_what_is_wrong() {
    let Some((dir, config)) = token("errors") else {
        return;
    };
    // the library
    let e = open_err(&Pkcs11Config {
        library: "/nonexistent/libp11.so".into(),
        ..config.clone()
    });
    assert!(
        e.contains("/nonexistent/libp11.so") && e.contains("does not exist"),
        "{e}"
    );
    let not_a_library = dir.path().join("lib.so");
    std::fs::write(&not_a_library, "not ELF").unwrap();
    let e = open_err(&Pkcs11Config {
        library: not_a_library.clone(),
        ..config.clone()
    });
    assert!(
        e.contains("cannot load PKCS#11 library")
            && e.contains(&not_a_library.display().to_string()),
        "{e}"
    );
    // the token label, with the labels that are there
    let e = open_err(&Pkcs11Config {
        token_label: "no-such-token".into(),
        ..config.clone()
    });
    assert!(
        e.contains("no token labelled \"no-such-token\"") && e.contains("\"errors\""),
        "{e}"
    );
    // the PIN file: missing, readable by others, empty
    let e = open_err(&Pkcs11Config {
        pin_file: dir.path().join("missing.pin"),
        ..config.clone()
    });
    assert!(e.contains("missing.pin"), "{e}");
    let open_pin = dir.path().join("open.pin");
    std::fs::write(&open_pin, "1234").unwrap();
    std::fs::set_permissions(&open_pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = open_err(&Pkcs11Config {
        pin_file: open_pin,
        ..config.clone()
    });
    assert!(e.contains("open.pin") && e.contains("0644"), "{e}");
    // the PIN itself (before any good login in this process: login state is per application)
    let wrong = dir.path().join("wrong.pin");
    std::fs::write(&wrong, "9999\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = open_err(&Pkcs11Config {
        pin_file: wrong.clone(),
        ..config.clone()
    });
    assert!(
        e.contains("CKR_PIN_INCORRECT") && e.contains(&wrong.display().to_string()),
        "{e}"
    );
    // and a preloaded key whose URI is bad or names nothing
    for (uri, needle) in [
        ("pkcs11:token=errors;object=x;slot-id=3", "slot-id"),
        ("pkcs11:token=errors;object=not-there", "no key on token"),
    ] {
        let e = open_err(&Pkcs11Config {
            preloaded: vec![(id("factory"), uri.into())],
            ..config.clone()
        });
        assert!(e.contains("\"factory\"") && e.contains(needle), "{e}");
    }
    Pkcs11KeyStore::open(&config).unwrap();
}

/// Simulates a token reset behind the store's back: `C_CloseAllSessions` on the token's slot,
/// which is what a library does to an application when its token is removed and reinserted
/// (or its daemon restarts): every session handle the store holds becomes invalid and the
/// login is gone. The store learns of it only from the next call's `CKR_SESSION_HANDLE_INVALID`.
/// cryptoki does not wrap `C_CloseAllSessions`, so this calls it through cryptoki-sys on the
/// same (already loaded and initialised) library.
fn reset_token(store: &Pkcs11KeyStore) {
    // SAFETY: the library is loaded and initialised by the store; C_GetFunctionList and
    // C_CloseAllSessions take only a pointer to fill and a slot id.
    unsafe {
        let lib = cryptoki_sys::Pkcs11::new(LIBRARY).unwrap();
        let mut list: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
        assert_eq!(lib.C_GetFunctionList(&mut list), cryptoki_sys::CKR_OK);
        let close_all = (*list).C_CloseAllSessions.unwrap();
        assert_eq!(close_all(store.pool.slot().id()), cryptoki_sys::CKR_OK);
    }
}

#[test]
fn the_store_logs_in_again_after_the_token_resets() {
    let Some((_d, config)) = token("reset") else {
        return;
    };
    let s = Arc::new(Pkcs11KeyStore::open(&config).unwrap());
    s.create_key_pair(&id("k"), KeyPairAlgorithm::EcP256)
        .unwrap();
    s.create_symmetric_key(&id("mac"), SymmetricUsage::HmacSha256)
        .unwrap();
    let tag = s
        .sign(
            &stored("mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"x"),
        )
        .unwrap();
    let before = s.pool.generation();

    reset_token(&s);
    // the next operation meets the dead session, re-opens, logs in, and succeeds
    let sig = s
        .sign(
            &stored("k"),
            SignAlgorithm::EcdsaSha256,
            SignInput::Message(b"m"),
        )
        .unwrap();
    assert!(
        s.verify(
            &stored("k"),
            SignAlgorithm::EcdsaSha256,
            SignInput::Message(b"m"),
            &sig
        )
        .unwrap()
    );
    assert_eq!(s.pool.generation(), before + 1);
    assert_eq!(
        s.sign(
            &stored("mac"),
            SignAlgorithm::HmacSha256,
            SignInput::Message(b"x")
        )
        .unwrap(),
        tag,
        "the same key after the reset"
    );

    // With 8 threads: all of them hold pooled sessions when the token resets, all meet dead
    // sessions at once, one of them re-opens the pool, and every signature succeeds. (The reset
    // happens while no thread is inside a PKCS#11 call: SoftHSM frees a session's memory in
    // C_CloseAllSessions, so closing one that another thread is using would crash SoftHSM
    // itself, which says nothing about this store.)
    let barrier = Arc::new(std::sync::Barrier::new(9));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                for round in 0..2 {
                    for j in 0..30 {
                        let m = format!("{i}/{round}/{j}");
                        s.sign(
                            &stored("mac"),
                            SignAlgorithm::HmacSha256,
                            SignInput::Message(m.as_bytes()),
                        )
                        .unwrap_or_else(|e| panic!("{m}: {e}"));
                    }
                    barrier.wait(); // all done with this round
                    barrier.wait(); // the token was reset
                }
            })
        })
        .collect();
    for _ in 0..2 {
        barrier.wait();
        reset_token(&s);
        barrier.wait();
    }
    for w in workers {
        w.join().unwrap();
    }
    // one re-login per reset, however many threads met it
    assert_eq!(s.pool.generation(), before + 2);
    assert!(s.pool.open_sessions() <= config.max_sessions + 1);
    s.sign(
        &stored("k"),
        SignAlgorithm::EcdsaSha256,
        SignInput::Message(b"m"),
    )
    .unwrap();
    assert_eq!(s.pool.generation(), before + 3);
}

#[test]
fn many_threads_share_a_bounded_pool() {
    let Some((_d, config)) = token("pool") else {
        return;
    };
    let s = Arc::new(
        Pkcs11KeyStore::open(&Pkcs11Config {
            max_sessions: 2,
            ..config
        })
        .unwrap(),
    );
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                s.create_key_pair(&id("shared"), KeyPairAlgorithm::EcP256)
                    .unwrap();
                for _ in 0..20 {
                    let sig = s
                        .sign(
                            &stored("shared"),
                            SignAlgorithm::EcdsaSha256,
                            SignInput::Message(b"m"),
                        )
                        .unwrap();
                    assert!(
                        s.verify(
                            &stored("shared"),
                            SignAlgorithm::EcdsaSha256,
                            SignInput::Message(b"m"),
                            &sig
                        )
                        .unwrap()
                    );
                }
                s.public_key(&id("shared")).unwrap()
            })
        })
        .collect();
    let keys: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "16 creators made one key"
    );
    assert_eq!(s.list().unwrap().len(), 1);
    assert!(s.pool.open_sessions() <= 3, "{}", s.pool.open_sessions());
}
