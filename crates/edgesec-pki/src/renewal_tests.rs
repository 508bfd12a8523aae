use super::*;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn quickstart(edge_days: i64, root_days: i64) -> ChainTimes {
    let edge = (t0(), t0() + Duration::days(edge_days));
    let root = (t0(), t0() + Duration::days(root_days));
    ChainTimes {
        mode: CaMode::Quickstart,
        edge,
        root: Some(root),
        earliest_expiry: edge.1.min(root.1),
    }
}

#[test]
fn default_policy_renews_at_80_percent() {
    let p = RenewalPolicy::default();
    let (nb, na) = (t0(), t0() + Duration::days(100));
    assert_eq!(renew_at(&p, nb, na), t0() + Duration::days(80));
    assert_eq!(retry_interval(&p, nb, na), Duration::days(4));
    let chain = quickstart(100, 3650);
    assert_eq!(
        check(&p, t0() + Duration::days(1), Some(&chain)),
        Action::WaitUntil(t0() + Duration::days(80))
    );
    assert_eq!(
        check(&p, t0() + Duration::days(80), Some(&chain)),
        Action::Renew {
            root: false,
            reason: RenewReason::Threshold
        }
    );
}

#[test]
fn time_thresholds_count_back_from_expiry() {
    let p = RenewalPolicy {
        threshold: Threshold::Before(Duration::days(7)),
        retry: Threshold::Before(Duration::minutes(30)),
        rotate_key: true,
    };
    let (nb, na) = (t0(), t0() + Duration::days(90));
    assert_eq!(renew_at(&p, nb, na), t0() + Duration::days(83));
    assert_eq!(retry_interval(&p, nb, na), Duration::minutes(30));
    // A threshold longer than the lifetime means "renew as soon as it exists".
    assert_eq!(renew_at(&p, nb, nb + Duration::days(3)), nb);
}

#[test]
fn retry_has_a_floor() {
    let p = RenewalPolicy::default();
    assert_eq!(
        retry_interval(&p, t0(), t0() + Duration::seconds(90)),
        MIN_RETRY
    );
}

#[test]
fn expired_invalid_and_future_certs_are_due() {
    let p = RenewalPolicy::default();
    let span = (t0(), t0() + Duration::days(90));
    assert_eq!(
        due(&p, t0() + Duration::days(400), span),
        Ok(RenewReason::Expired)
    );
    assert_eq!(
        due(&p, t0() + Duration::days(90), span),
        Ok(RenewReason::Expired)
    );
    assert_eq!(
        due(&p, t0() - Duration::hours(1), span),
        Ok(RenewReason::NotYetValid)
    );
    assert_eq!(due(&p, t0(), (t0(), t0())), Ok(RenewReason::Invalid));
}

#[test]
fn the_root_goes_first_and_the_earliest_wait_wins() {
    let p = RenewalPolicy::default();
    // Root of 100 days, edge of 90: the edge's 72 days come before the root's 80.
    let chain = quickstart(90, 100);
    assert_eq!(
        check(&p, t0(), Some(&chain)),
        Action::WaitUntil(t0() + Duration::days(72))
    );
    // Past both thresholds: the root is renewed (and the edge with it).
    assert_eq!(
        check(&p, t0() + Duration::days(85), Some(&chain)),
        Action::Renew {
            root: true,
            reason: RenewReason::Threshold
        }
    );
    // A jump past the whole lifetime of both.
    assert_eq!(
        check(&p, t0() + Duration::days(5000), Some(&chain)),
        Action::Renew {
            root: true,
            reason: RenewReason::Expired
        }
    );
}

#[test]
fn provided_chains_are_never_renewed_and_missing_ones_are_created() {
    let p = RenewalPolicy::default();
    let mut chain = quickstart(90, 3650);
    chain.mode = CaMode::Provided;
    chain.root = None;
    assert_eq!(
        check(&p, t0() + Duration::days(89), Some(&chain)),
        Action::NeverRenew {
            expires: t0() + Duration::days(90)
        }
    );
    assert_eq!(check(&p, t0(), None), Action::Create);
}

#[test]
fn issued_mode_looks_at_the_edge_only() {
    let p = RenewalPolicy::default();
    let chain = ChainTimes {
        mode: CaMode::Issued,
        edge: (t0(), t0() + Duration::days(10)),
        root: None,
        earliest_expiry: t0() + Duration::days(10),
    };
    assert_eq!(
        check(&p, t0() + Duration::days(9), Some(&chain)),
        Action::Renew {
            root: false,
            reason: RenewReason::Threshold
        }
    );
}
