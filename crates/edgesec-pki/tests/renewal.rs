//! Renewal and clock sanity with a clock the tests move: threshold, expiry at start, jumps past
//! whole lifetimes, a 1970 boot, key rotation, crash recovery, and the renewal task's events.

mod common;

use std::time::Duration as StdDuration;

use ::time::{Duration, OffsetDateTime};
use common::*;
use edgesec_keys::{KeyError, KeyId, KeyPairAlgorithm};
use edgesec_pki::renewal::{self, Action, RenewReason};
use edgesec_pki::{ChangeReason, PkiError, PkiEvent, TestClock};

fn edge_key_id(dev: &Device) -> String {
    let text = std::fs::read_to_string(dev.state_dir().join("certs/ca-state.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["edge_key"].as_str().unwrap().to_string()
}

#[test]
fn renews_at_the_threshold_with_a_new_key() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let mut events = ca.subscribe();
    let before = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    let old_key = edge_key_id(&dev);
    let bundle = ca.trust_bundle_pem().unwrap();

    // 71 days into a 90-day life: nothing to do yet (80 % is day 72).
    dev.clock.advance(Duration::days(71));
    assert!(matches!(ca.next_action(dev.now()), Action::WaitUntil(_)));
    assert!(!ca.renew_due().unwrap());

    dev.clock.advance(Duration::days(1));
    assert_eq!(
        ca.next_action(dev.now()),
        Action::Renew {
            root: false,
            reason: RenewReason::Threshold
        }
    );
    assert!(ca.renew_due().unwrap());
    match events.try_recv().unwrap() {
        PkiEvent::ChainChanged {
            reason,
            root_changed,
            key_rotated,
            edge_not_after,
        } => {
            assert_eq!(reason, ChangeReason::Renewed(RenewReason::Threshold));
            assert!(!root_changed && key_rotated);
            assert_eq!(edge_not_after, dev.now() + Duration::days(90));
        }
        other => panic!("unexpected {other:?}"),
    }

    let after = ca.issue_server_cert("$edgeHub", "gw").unwrap();
    // A rotated key really differs, and the old one is gone from the key store.
    assert_ne!(spki(&edge_of(&before)), spki(&edge_of(&after)));
    let new_key = edge_key_id(&dev);
    assert_ne!(old_key, new_key);
    assert!(matches!(
        dev.store.public_key(&KeyId::new(old_key).unwrap()),
        Err(KeyError::NotFound(_))
    ));
    // Same root: the bundle modules already have still verifies the new certificates, and the
    // new bundle swaps only the edge CA.
    let root_of = |b: &str| parse_pem(b).into_iter().find(|c| self_signed(c)).unwrap();
    let new_bundle = ca.trust_bundle_pem().unwrap();
    assert_eq!(root_of(&new_bundle), root_of(&bundle));
    assert!(parse_pem(&new_bundle).contains(&edge_of(&after)));
    assert!(!parse_pem(&new_bundle).contains(&edge_of(&before)));
    verify_both(
        &dev.file("v1"),
        &after,
        &new_bundle,
        dev.now(),
        Purpose::Server,
        Some("gw"),
    );
    // A module still holding the old bundle accepts the new chain too (the root is the same).
    verify_both(
        &dev.file("v"),
        &after,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("edgeHub"),
    );
}

#[test]
fn renewal_without_rotation_keeps_the_key() {
    let dev = Device::new();
    let mut cfg = quickstart();
    cfg.edge_ca.auto_renew.rotate_key = false;
    let ca = dev.open(&cfg).unwrap();
    let before = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    dev.clock.advance(Duration::days(80));
    assert!(ca.renew_due().unwrap());
    let after = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    assert_ne!(before, after);
    assert_eq!(spki(&before), spki(&after));
}

#[test]
fn renews_at_start_when_the_ca_expired_while_down() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let old = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    drop(ca);
    dev.clock.advance(Duration::days(120));
    let ca = dev.open(&quickstart()).unwrap();
    let new = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    assert_ne!(old, new);
    let (nb, na) = validity(&new);
    assert!(nb <= dev.now() && na == dev.now() + Duration::days(90));
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn a_jump_past_the_root_lifetime_renews_the_whole_chain() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let old_bundle = ca.trust_bundle_pem().unwrap();
    dev.clock.advance(Duration::days(3700));
    assert_eq!(
        ca.next_action(dev.now()),
        Action::Renew {
            root: true,
            reason: RenewReason::Expired
        }
    );
    // An expired CA issues nothing until it is renewed.
    assert!(matches!(
        ca.issue_server_cert("m", "m"),
        Err(PkiError::CaExpired { .. })
    ));
    assert!(ca.renew_due().unwrap());
    let bundle = ca.trust_bundle_pem().unwrap();
    assert_ne!(bundle, old_bundle);
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
    assert!(webpki_verify(&issued, &old_bundle, dev.now(), Purpose::Server, Some("m")).is_err());
}

#[test]
fn a_1970_boot_creates_nothing_and_issues_nothing_until_the_clock_is_set() {
    let dev = Device::with_clock(TestClock::new(OffsetDateTime::UNIX_EPOCH));
    let ca = dev.open(&quickstart()).unwrap();
    assert!(!ca.status().ready);
    assert!(ca.status().clock.is_err());
    let err = ca.issue_server_cert("m", "m").unwrap_err();
    assert!(matches!(err, PkiError::ClockNotSane { .. }), "{err}");
    assert!(err.to_string().contains("1970-01-01"), "{err}");
    assert_eq!(ca.next_action(dev.now()), Action::ClockWrong);
    assert!(matches!(ca.renew_due(), Err(PkiError::ClockNotSane { .. })));
    assert!(!dev.state_dir().join("certs/edge-ca.pem").exists());

    dev.clock.set(OffsetDateTime::now_utc());
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn a_1970_boot_with_a_chain_keeps_every_file() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let bundle = ca.trust_bundle_pem().unwrap();
    drop(ca);
    let certs = dev.state_dir().join("certs");
    let snapshot = |dir: &std::path::Path| {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&certs);

    let real = dev.now();
    dev.clock.set(OffsetDateTime::UNIX_EPOCH);
    let ca = dev.open(&quickstart()).unwrap();
    assert!(ca.status().ready);
    assert!(matches!(
        ca.issue_server_cert("m", "m"),
        Err(PkiError::ClockNotSane { .. })
    ));
    assert!(matches!(ca.renew_due(), Err(PkiError::ClockNotSane { .. })));
    assert_eq!(ca.trust_bundle_pem().unwrap(), bundle);
    assert_eq!(
        snapshot(&certs),
        before,
        "nothing was rewritten under a wrong clock"
    );

    dev.clock.set(real + Duration::hours(1));
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &bundle,
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}

#[test]
fn a_clock_behind_the_high_water_mark_counts_as_wrong() {
    let dev = Device::new();
    let real = dev.now();
    dev.clock.advance(Duration::days(400));
    let ca = dev.open(&quickstart()).unwrap();
    ca.issue_server_cert("m", "m").unwrap();
    drop(ca);
    dev.clock.set(real);
    let ca = dev.open(&quickstart()).unwrap();
    let err = ca.issue_server_cert("m", "m").unwrap_err();
    assert!(err.to_string().contains("already seen"), "{err}");
}

#[test]
fn an_interrupted_rotation_is_finished_or_undone_at_start() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let current = edge_key_id(&dev);
    drop(ca);
    let state_file = dev.state_dir().join("certs/ca-state.toml");
    let edit = |f: &dyn Fn(&mut toml::Table)| {
        let mut t: toml::Table = std::fs::read_to_string(&state_file)
            .unwrap()
            .parse()
            .unwrap();
        f(&mut t);
        std::fs::write(&state_file, toml::to_string(&t).unwrap()).unwrap();
    };

    // Crash after the new key was made, before its certificate was written: undone.
    let orphan = KeyId::new("edgesec/ca/edge-99").unwrap();
    dev.store
        .create_key_pair(&orphan, KeyPairAlgorithm::EcP256)
        .unwrap();
    edit(&|t| {
        t.insert("pending_edge_key".into(), orphan.to_string().into());
    });
    let ca = dev.open(&quickstart()).unwrap();
    assert_eq!(edge_key_id(&dev), current);
    assert!(matches!(
        dev.store.public_key(&orphan),
        Err(KeyError::NotFound(_))
    ));
    drop(ca);

    // Crash after the certificate was written, before the state named its key: finished.
    let old = KeyId::new("edgesec/ca/edge-98").unwrap();
    dev.store
        .create_key_pair(&old, KeyPairAlgorithm::EcP256)
        .unwrap();
    edit(&|t| {
        t.insert("edge_key".into(), old.to_string().into());
        t.insert("pending_edge_key".into(), current.clone().into());
    });
    let ca = dev.open(&quickstart()).unwrap();
    assert_eq!(edge_key_id(&dev), current);
    assert!(matches!(
        dev.store.public_key(&old),
        Err(KeyError::NotFound(_))
    ));
    ca.issue_server_cert("m", "m").unwrap();
}

async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<PkiEvent>) -> PkiEvent {
    // A generous bound only so that a broken task fails the test instead of hanging it.
    tokio::time::timeout(StdDuration::from_secs(300), rx.recv())
        .await
        .expect("no event from the renewal task")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_renewal_task_renews_when_the_clock_reaches_the_threshold() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let mut events = ca.subscribe();
    let task = renewal::spawn(ca.clone());
    dev.clock.advance(Duration::days(75));
    task.wake();
    match next_event(&mut events).await {
        PkiEvent::ChainChanged {
            reason,
            key_rotated,
            ..
        } => {
            assert_eq!(reason, ChangeReason::Renewed(RenewReason::Threshold));
            assert!(key_rotated);
        }
        other => panic!("unexpected {other:?}"),
    }
    // And again one whole lifetime later (the clock jumps past the renewed CA's expiry).
    dev.clock.advance(Duration::days(200));
    task.wake();
    match next_event(&mut events).await {
        PkiEvent::ChainChanged { reason, .. } => {
            assert_eq!(reason, ChangeReason::Renewed(RenewReason::Expired))
        }
        other => panic!("unexpected {other:?}"),
    }
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
    task.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_renewal_task_waits_for_a_sane_clock_then_creates_the_chain() {
    let dev = Device::with_clock(TestClock::new(OffsetDateTime::UNIX_EPOCH));
    let ca = dev.open(&quickstart()).unwrap();
    let mut events = ca.subscribe();
    let task = renewal::spawn(ca.clone());
    match next_event(&mut events).await {
        PkiEvent::ClockNotSane { message } => assert!(message.contains("1970"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    dev.clock.set(OffsetDateTime::now_utc());
    task.wake();
    match next_event(&mut events).await {
        PkiEvent::ChainChanged {
            reason,
            root_changed,
            ..
        } => {
            assert_eq!(reason, ChangeReason::Created);
            assert!(root_changed);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(ca.status().ready);
    task.stop();
}

#[test]
fn a_lost_state_file_finds_the_keys_again_and_never_reuses_an_id() {
    let dev = Device::new();
    let ca = dev.open(&quickstart()).unwrap();
    let edge = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    let bundle = ca.trust_bundle_pem().unwrap();
    let key = edge_key_id(&dev);
    drop(ca);
    std::fs::remove_file(dev.state_dir().join("certs/ca-state.toml")).unwrap();
    let ca = dev.open(&quickstart()).unwrap();
    assert_eq!(parse_pem(&ca.edge_ca_chain_pem().unwrap())[0], edge);
    assert_eq!(ca.trust_bundle_pem().unwrap(), bundle);
    assert_eq!(edge_key_id(&dev), key);
    // The next rotation makes a key under a new id, not one of the old ones.
    ca.force_renew(false).unwrap();
    let rotated = edge_key_id(&dev);
    assert_ne!(rotated, key);
    let new_edge = parse_pem(&ca.edge_ca_chain_pem().unwrap())[0].clone();
    assert_ne!(spki(&new_edge), spki(&edge));
    let issued = ca.issue_server_cert("m", "m").unwrap();
    verify_both(
        &dev.file("v"),
        &issued,
        &ca.trust_bundle_pem().unwrap(),
        dev.now(),
        Purpose::Server,
        Some("m"),
    );
}
