//! `[edge_ca]` (quickstart, preloaded, issued by a local CA or EST, self-signed) and
//! `[edge_ca.auto_renew]`.

use edgesec_config::ConfigError;

use super::aziot::{AzEdgeCa, AzLocalCa, Method};
use super::convert::Cv;

pub fn edge_ca(
    cv: &mut Cv<'_>,
    ca: Option<&AzEdgeCa>,
    local_ca: Option<&AzLocalCa>,
) -> Result<(), ConfigError> {
    let quickstart_note = "edgesec makes a device root CA and an edge CA under it, keys in keyd";
    let Some(ca) = ca else {
        cv.doc.set("edge_ca", "mode", "quickstart");
        return Ok(());
    };
    let preloaded = ca.cert.is_some() || ca.pk.is_some();
    let quick = ca.auto_generated_edge_ca_expiry_days.is_some();
    let issued = ca.method.is_some();
    if [preloaded, quick, issued].iter().filter(|x| **x).count() > 1 {
        let key = if issued {
            "edge_ca.method"
        } else {
            "edge_ca.auto_generated_edge_ca_expiry_days"
        };
        return Err(cv.err(key, "mixes [edge_ca] variants: give cert and pk (preloaded), method (issued), or auto_generated_edge_ca_expiry_days (quickstart), not several"));
    }
    let mut mode = "quickstart";
    let mut renews = true;
    if preloaded {
        let (Some(cert), Some(pk)) = (&ca.cert, &ca.pk) else {
            let missing = if ca.cert.is_none() {
                "edge_ca.cert"
            } else {
                "edge_ca.pk"
            };
            let present = if ca.cert.is_none() {
                "edge_ca.pk"
            } else {
                "edge_ca.cert"
            };
            return Err(cv.err(
                present,
                format!("a preloaded edge CA needs both cert and pk; `{missing}` is missing"),
            ));
        };
        let cert = cv.file_uri("edge_ca.cert", cert)?;
        let pk = cv.file_uri("edge_ca.pk", pk)?;
        mode = "provided";
        renews = false;
        cv.doc.set("edge_ca", "mode", mode);
        cv.doc
            .set("edge_ca", "cert", format!("file://{}", cert.display()));
        cv.doc
            .set("edge_ca", "pk", format!("file://{}", pk.display()));
        cv.carried("edge_ca.cert", "edge_ca.cert (mode = \"provided\")");
        cv.carried(
            "edge_ca.pk",
            "edge_ca.pk (imported into keyd at edgesecd's start)",
        );
    } else if let Some(m) = ca.method {
        match m {
            Method::Est => {
                cv.dropped("edge_ca", "EST issuance of the edge CA is not supported yet; the converted config uses a quickstart CA instead");
                cv.dropped("cert_issuance.est", "EST issuance is not supported yet");
                cv.doc.set("edge_ca", "mode", "quickstart");
                return Ok(());
            }
            Method::LocalCa => {
                let lc = local_ca.ok_or_else(|| cv.err("edge_ca.method", "method = \"local_ca\" needs [cert_issuance.local_ca] with cert and pk"))?;
                let (Some(cert), Some(pk)) = (&lc.cert, &lc.pk) else {
                    return Err(cv.err("cert_issuance.local_ca", "needs cert and pk"));
                };
                let cert = cv.file_uri("cert_issuance.local_ca.cert", cert)?;
                let pk = cv.file_uri("cert_issuance.local_ca.pk", pk)?;
                mode = "issued";
                cv.doc.set("edge_ca", "mode", mode);
                cv.doc.set("edge_ca", "issuer_cert", format!("file://{}", cert.display()));
                cv.doc.set("edge_ca", "issuer_pk", format!("file://{}", pk.display()));
                cv.carried("edge_ca.method", "edge_ca.mode = \"issued\"");
                cv.carried("cert_issuance.local_ca", "edge_ca.issuer_cert / issuer_pk");
            }
            Method::SelfSigned => {
                cv.doc.set("edge_ca", "mode", mode);
                cv.carried(
                    "edge_ca.method",
                    format!("edge_ca.mode = \"quickstart\" ({quickstart_note}, instead of one self-signed CA)"),
                );
            }
            other => return Err(cv.err("edge_ca.method", format!("{:?} is not an edge CA issuance method; IoT Edge knows \"est\", \"local_ca\" and \"self_signed\"", other.name()))),
        }
    } else {
        cv.doc.set("edge_ca", "mode", mode);
    }
    if mode != "provided" {
        if let Some(d) = ca.auto_generated_edge_ca_expiry_days.or(ca.expiry_days) {
            if d == 0 {
                let k = if quick {
                    "edge_ca.auto_generated_edge_ca_expiry_days"
                } else {
                    "edge_ca.expiry_days"
                };
                return Err(cv.err(k, "must be positive"));
            }
            cv.doc.set("edge_ca", "expiry_days", d as i64);
        }
        cv.carried(
            "edge_ca.auto_generated_edge_ca_expiry_days",
            format!("edge_ca.expiry_days ({quickstart_note})"),
        );
        cv.carried("edge_ca.expiry_days", "edge_ca.expiry_days");
        subject(cv, ca)?;
    } else {
        for k in [
            "edge_ca.expiry_days",
            "edge_ca.common_name",
            "edge_ca.subject",
        ] {
            cv.dropped(k, "a preloaded edge CA keeps its own subject and lifetime");
        }
    }
    if let Some(r) = &ca.auto_renew {
        if !renews {
            cv.dropped(
                "edge_ca.auto_renew",
                "edgesec never renews a provided (preloaded) edge CA, like IoT Edge",
            );
        } else {
            for (k, v) in [("threshold", &r.threshold), ("retry", &r.retry)] {
                if let Some(v) = v {
                    let key = format!("edge_ca.auto_renew.{k}");
                    v.parse::<edgesec_pki::Threshold>()
                        .map_err(|e| cv.err(&key, e))?;
                    cv.doc.set("edge_ca.auto_renew", k, v.as_str());
                    cv.carried(&key, key.clone());
                }
            }
            if let Some(b) = r.rotate_key {
                cv.doc.set("edge_ca.auto_renew", "rotate_key", b);
                cv.carried(
                    "edge_ca.auto_renew.rotate_key",
                    "edge_ca.auto_renew.rotate_key",
                );
            }
        }
    }
    Ok(())
}

/// `common_name`, or a `subject` that holds only a CN, becomes `common_name`.
fn subject(cv: &mut Cv<'_>, ca: &AzEdgeCa) -> Result<(), ConfigError> {
    if let Some(cn) = &ca.common_name {
        cv.doc.set("edge_ca", "common_name", cn.as_str());
        cv.carried("edge_ca.common_name", "edge_ca.common_name");
    }
    let cn = match &ca.subject {
        None => return Ok(()),
        Some(toml::Value::String(s)) => s
            .strip_prefix("CN=")
            .filter(|r| !r.contains(','))
            .map(str::to_owned),
        Some(toml::Value::Table(t)) if t.len() == 1 => {
            t.get("CN").and_then(|v| v.as_str()).map(str::to_owned)
        }
        Some(_) => None,
    };
    match cn {
        Some(cn) if ca.common_name.is_none() => {
            cv.doc.set("edge_ca", "common_name", cn);
            cv.carried("edge_ca.subject", "edge_ca.common_name");
        }
        _ => cv.dropped(
            "edge_ca.subject",
            "edgesec sets only the CN of its CA certificates (edge_ca.common_name)",
        ),
    }
    Ok(())
}
