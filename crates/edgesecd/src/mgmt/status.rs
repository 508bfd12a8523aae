//! `GET /status`: edgesec's own summary for `edgesec system status` and `edgesec check` — the
//! daemon's version and uptime, the key store and what it can do, the device identity, the CA
//! chain with days to expiry, and module counts. Not an IoT Edge route.

use edgesec_api::mgmt::{
    CaChainStatus, ChainCert, DaemonStatus, DeviceStatus, KeyStoreStatus, ModuleCounts,
};
use edgesec_http::{ApiError, Response, json_response};
use edgesec_pki::certinfo::CertInfo;
use http::StatusCode;

use crate::daemon::Daemon;

pub async fn status(d: &Daemon) -> Result<Response, ApiError> {
    let mut modules = ModuleCounts::default();
    for m in d.list_modules().await {
        modules.total += 1;
        match m.status.runtime_status.status.as_str() {
            "running" => modules.running += 1,
            "failed" | "dead" => modules.failed += 1,
            _ => modules.stopped += 1,
        }
    }
    let device = device(d).await;
    let status = DaemonStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: d.started.elapsed().as_secs(),
        key_store: key_store(d).await,
        device,
        ca: ca(d),
        modules,
    };
    Ok(json_response(StatusCode::OK, &status))
}

/// The device as provisioned: from the cloud state for a hub-connected device.
async fn device(d: &Daemon) -> DeviceStatus {
    let p = &d.config.provisioning;
    let Some(cloud) = &d.cloud else {
        return DeviceStatus {
            id: p.device_id.clone(),
            hub: p.iothub_hostname.clone(),
            source: format!("{:?}", p.source).to_lowercase(),
            credential: None,
            registration_id: None,
            provisioned_at: None,
            from_cache: false,
            reprovisioning: None,
        };
    };
    let s = cloud.state();
    DeviceStatus {
        id: s.device_id,
        hub: s.hub,
        source: s.source.into(),
        credential: Some(s.credential.into()),
        registration_id: s.registration_id,
        provisioned_at: s.provisioned_at.map(|t| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
            )
            .to_string()
        }),
        from_cache: s.from_cache,
        reprovisioning: Some(cloud.mode().as_str().into()),
    }
}

async fn key_store(d: &Daemon) -> KeyStoreStatus {
    let caps = match d.identities.keyd().capabilities().await {
        Ok(c) => c,
        Err(e) => {
            return KeyStoreStatus {
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    // enum values as they are spelled on the wire (`ec-p256`, `hmac-sha256`, ...)
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let mut list = Vec::new();
    for (prefix, values) in [
        ("key-pair", serde_json::json!(caps.key_pair_algorithms)),
        ("sign", serde_json::json!(caps.sign_algorithms)),
        ("symmetric", serde_json::json!(caps.symmetric_usages)),
    ] {
        for v in values.as_array().into_iter().flatten() {
            list.push(format!("{prefix}:{}", name(v.clone())));
        }
    }
    for (flag, on) in [
        ("digest-signing", caps.digest_signing),
        ("derive", caps.derive),
        ("export-derived", caps.export_derived),
        ("aead", caps.aead),
        ("import", caps.import),
        ("delete", caps.delete),
    ] {
        if on {
            list.push(flag.into());
        }
    }
    let routes = caps
        .backends
        .iter()
        .map(|part| {
            let kind = if part.hardware_backed {
                "hardware-backed"
            } else {
                "software"
            };
            format!("{} ({kind}): {}", part.backend, part.keys.join(", "))
        })
        .collect();
    KeyStoreStatus {
        backend: Some(caps.backend),
        hardware_backed: caps.hardware_backed,
        capabilities: list,
        routes,
        error: None,
    }
}

fn parse_pem(pem: &str) -> Vec<CertInfo> {
    edgesec_pki::store::certs_from_pem(pem.as_bytes(), std::path::Path::new("chain"))
        .unwrap_or_default()
        .iter()
        .filter_map(|c| CertInfo::parse(c).ok())
        .collect()
}

fn ca(d: &Daemon) -> CaChainStatus {
    let s = d.ca.status();
    let now = d.ca.now();
    let mut chain =
        d.ca.edge_ca_chain_pem()
            .map(|p| parse_pem(&p))
            .unwrap_or_default();
    // the root is not part of the chain modules get; find it in the trust bundle
    if let Some(last) = chain.last().cloned()
        && !last.self_signed
    {
        let bundle =
            d.ca.trust_bundle_pem()
                .map(|p| parse_pem(&p))
                .unwrap_or_default();
        chain.extend(
            bundle
                .into_iter()
                .filter(|c| c.self_signed && c.subject_raw == last.issuer_raw),
        );
    }
    CaChainStatus {
        mode: s.mode.to_string(),
        ready: s.ready,
        edge_subject: s.edge_subject,
        not_after: s.edge_not_after.map(edgesec_pki::rfc3339),
        days_left: s.chain_not_after.map(|t| (t - now).whole_days()),
        chain: chain
            .iter()
            .map(|c| ChainCert {
                subject: c.subject.clone(),
                not_after: edgesec_pki::rfc3339(c.not_after),
                days_left: (c.not_after - now).whole_days(),
            })
            .collect(),
        clock_error: s.clock.err(),
    }
}
