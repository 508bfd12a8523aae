//! The CA checks: `ca-expiry` (the chain as files, against now) and `certs-match-keys`.

use edgesec_keyd::client::KeydClient;
use edgesec_pki::certinfo::{CertInfo, issued_by, raw_public_key};
use edgesecd::config::Config;
use time::OffsetDateTime;

use super::checks::{not, pass};
use super::{Check, Outcome};
use crate::pkifiles::{ca_entries, days_left};

/// Warn when the CA chain expires within this many days.
pub const CA_WARN_DAYS: i64 = 7;

/// The CA chain as files: every certificate valid now, each one issued by the next, and the
/// earliest expiry more than [`CA_WARN_DAYS`] away.
pub fn ca_expiry(c: &Config, now: OffsetDateTime) -> Check {
    let i = "ca-expiry";
    let entries = match ca_entries(c) {
        Ok(e) => e,
        Err(e) => {
            return not(
                i,
                Outcome::Fail,
                e,
                "replace or remove the unreadable file; edgesecd re-creates what it owns",
            );
        }
    };
    let certs: Vec<&CertInfo> = entries.iter().flat_map(|e| e.certs.iter()).collect();
    let Some(edge) = certs.first() else {
        return not(
            i,
            Outcome::Fail,
            format!(
                "no edge CA certificate under {}",
                c.state_dir.join("certs").display()
            ),
            "start edgesecd: it creates the CA chain at its first start",
        );
    };
    if let Some(x) = certs.iter().find(|x| x.not_after < now) {
        return not(
            i,
            Outcome::Fail,
            format!(
                "{} expired at {}",
                x.subject,
                edgesec_pki::rfc3339(x.not_after)
            ),
            "restart edgesecd so it renews the CA it owns; a provided CA must be replaced by you",
        );
    }
    if let Some(x) = certs.iter().find(|x| x.not_before > now) {
        return not(
            i,
            Outcome::Fail,
            format!(
                "{} is not valid before {}",
                x.subject,
                edgesec_pki::rfc3339(x.not_before)
            ),
            "check the clock (timedatectl); a certificate from the future means one of them is wrong",
        );
    }
    for pair in certs.windows(2) {
        if !issued_by(pair[0], pair[1]) {
            return not(
                i,
                Outcome::Fail,
                format!("{} is not issued by {}", pair[0].subject, pair[1].subject),
                "restart edgesecd to re-create the chain it owns, or fix the provided chain file",
            );
        }
    }
    let first = certs.iter().min_by_key(|x| x.not_after).unwrap_or(edge);
    let days = days_left(first.not_after, now);
    let detail = format!(
        "valid for {days} more days ({} expires first, at {})",
        first.subject,
        edgesec_pki::rfc3339(first.not_after)
    );
    if days < CA_WARN_DAYS {
        not(
            i,
            Outcome::Warn,
            detail,
            "edgesecd renews the CA it owns before expiry; a provided CA must be replaced by you",
        )
    } else {
        pass(i, detail)
    }
}

pub async fn certs_match_keys(c: &Config, keyd: Option<&KeydClient>) -> Check {
    let i = "certs-match-keys";
    let Some(keyd) = keyd else {
        return not(
            i,
            Outcome::Skip,
            "keyd is not reachable",
            "see keyd-reachable",
        );
    };
    let Ok(entries) = ca_entries(c) else {
        return not(
            i,
            Outcome::Skip,
            "the CA files are unreadable",
            "see ca-expiry",
        );
    };
    let mut checked = Vec::new();
    for e in &entries {
        let Some(id) = e
            .key
            .strip_prefix("keyd:")
            .and_then(|k| k.split_whitespace().next())
        else {
            continue;
        };
        let theirs = match keyd.load_key_pair(id).await {
            Ok(h) => keyd.public_key(&h.key_handle).await.map(|p| p.spki),
            Err(e) => Err(e),
        };
        let theirs = match theirs {
            Ok(spki) => spki,
            Err(err) => {
                return not(
                    i,
                    Outcome::Fail,
                    format!("{}: key {id} in keyd: {err}", e.id),
                    "restart edgesecd so it re-creates the CA it owns; for a provided CA check pk",
                );
            }
        };
        if raw_public_key(&theirs).ok() != raw_public_key(&e.certs[0].spki).ok() {
            return not(
                i,
                Outcome::Fail,
                format!(
                    "{} ({}) does not match key {id} in keyd",
                    e.id,
                    e.path.display()
                ),
                "restart edgesecd so it re-creates the CA it owns; for a provided CA fix cert or pk",
            );
        }
        checked.push(format!("{} ↔ {id}", e.id));
    }
    if checked.is_empty() {
        return not(
            i,
            Outcome::Skip,
            "no CA certificate with a key in keyd yet",
            "start edgesecd once",
        );
    }
    pass(i, checked.join(", "))
}
