//! `support-bundle [-o FILE]`: a `.tar.gz` with what a support person needs: check output,
//! daemon status, module list and logs, the audit log tail, versions, and the configs with
//! every secret redacted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::ctx::Ctx;
use crate::error::{CliError, Result};

const LOG_TAIL: usize = 1000;

/// Keys whose values are secrets (or may hold one) in edgesec and IoT Edge configs.
const SECRET_KEYS: &[&str] = &[
    "connection_string",
    "symmetric_key",
    "device_id_pk",
    "identity_pk",
    "value",
    "pin",
    "user_pin",
    "so_pin",
    "password",
    "shared_access_key",
    "pk",
    "issuer_pk",
];

/// Replaces the values of secret keys (and any `SharedAccessKey=` in a value) with
/// `"<redacted>"`. References to keys in keyd (`"keyd:<id>"`) are kept: they hold no secret.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let redacted = trimmed.split_once('=').and_then(|(k, v)| {
            let key = k.trim().trim_matches('"');
            let secret = SECRET_KEYS.contains(&key) || key.to_ascii_lowercase().contains("secret");
            let reference = v.trim().starts_with("\"keyd:");
            (!trimmed.starts_with('#') && secret && !reference).then(|| {
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}{} = \"<redacted>\"", k.trim())
            })
        });
        let mut l = redacted.unwrap_or_else(|| line.to_owned());
        if let Some(i) = l.find("SharedAccessKey=") {
            let end = l[i..].find(['"', ';']).map(|e| i + e).unwrap_or(l.len());
            l.replace_range(i + "SharedAccessKey=".len()..end, "<redacted>");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn tail(path: &Path, n: usize) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n") + "\n")
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("serializable")
}

fn default_name() -> String {
    let t = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    format!("support_bundle_{}.tar.gz", t.replace([':', '-'], ""))
}

pub async fn support_bundle(ctx: &Ctx, output: Option<PathBuf>) -> Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let _spin = crate::ui::Spinner::start("collecting the support bundle");

    let report = crate::check::run(ctx).await;
    files.push(("check.json".into(), report.to_json().into_bytes()));

    let mut versions = format!("edgesec {}\n", env!("CARGO_PKG_VERSION"));
    match ctx.mgmt() {
        Ok((client, _)) => {
            match client.status().await {
                Ok(s) => {
                    versions.push_str(&format!("edgesecd {}\n", s.version));
                    files.push(("status.json".into(), json(&s)));
                }
                Err(e) => problems.push(format!("status: {e}")),
            }
            match client.system_info().await {
                Ok(i) => {
                    versions.push_str(&format!(
                        "{} {} {}\n",
                        i.os_type, i.kernel_release, i.architecture
                    ));
                    files.push(("systeminfo.json".into(), json(&i)));
                }
                Err(e) => problems.push(format!("systeminfo: {e}")),
            }
            match client.list_modules().await {
                Ok(mods) => {
                    files.push((
                        "modules.json".into(),
                        json(&serde_json::json!({ "modules": mods })),
                    ));
                    let socket = ctx.mgmt_socket()?;
                    for m in &mods {
                        let mut buf = Vec::new();
                        let q = format!("tail={LOG_TAIL}&follow=false&timestamps=true");
                        let r = crate::logs::stream_logs(&socket, &m.name, &q, |_, p| {
                            buf.extend_from_slice(p)
                        })
                        .await;
                        if let Err(e) = r {
                            problems.push(format!("logs of {}: {}", m.name, e.message));
                        }
                        let safe: String = m
                            .name
                            .chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                                    c
                                } else {
                                    '_'
                                }
                            })
                            .collect();
                        files.push((format!("logs/{safe}.log"), buf));
                    }
                }
                Err(e) => problems.push(format!("modules: {e}")),
            }
        }
        Err(e) => problems.push(format!("management API: {}", e.message)),
    }
    files.push(("versions.txt".into(), versions.into_bytes()));

    match std::fs::read_to_string(&ctx.config_path) {
        Ok(t) => files.push(("config.toml".into(), redact(&t).into_bytes())),
        Err(e) => problems.push(format!("{}: {e}", ctx.config_path.display())),
    }
    if let Ok(c) = &ctx.config {
        if let Some(k) = &c.keyd.start_with_config {
            match std::fs::read_to_string(k) {
                Ok(t) => files.push(("keyd.toml".into(), redact(&t).into_bytes())),
                Err(e) => problems.push(format!("{}: {e}", k.display())),
            }
        }
        match tail(&c.audit_log, LOG_TAIL) {
            Ok(t) => files.push(("audit.log".into(), t.into_bytes())),
            Err(e) => problems.push(format!("{}: {e}", c.audit_log.display())),
        }
    }
    if !problems.is_empty() {
        files.push((
            "problems.txt".into(),
            (problems.join("\n") + "\n").into_bytes(),
        ));
    }

    let bytes = pack(&files)
        .map_err(|e| CliError::io("cannot build the archive", e, "check free memory"))?;
    drop(_spin);
    match output.as_deref() {
        Some(p) if p == Path::new("-") => {
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| CliError::io("stdout", e, "redirect stdout to a file"))?;
        }
        _ => {
            let path = output.unwrap_or_else(|| PathBuf::from(default_name()));
            std::fs::write(&path, &bytes).map_err(|e| {
                CliError::io(
                    format!("cannot write {}", path.display()),
                    e,
                    "give -o with a writable path",
                )
            })?;
            eprintln!(
                "Wrote {} ({} files{}).",
                path.display(),
                files.len(),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} items could not be collected, see problems.txt",
                        problems.len()
                    )
                }
            );
        }
    }
    Ok(())
}

fn pack(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_cksum();
        tar.append_data(&mut h, format!("support_bundle/{name}"), data.as_slice())?;
    }
    tar.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_references_kept() {
        let text = "[provisioning]\nconnection_string = \"HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0\"\n\
                    [provisioning.authentication]\ndevice_id_pk = { value = \"c2VjcmV0\" }\n\
                    symmetric_key = \"keyd:edgesec/dps-key\"\n  user_pin = \"1234\"\n\
                    hostname = \"gw\"\nenv = { X = \"SharedAccessKey=abc;\" }\n# value = \"kept comment\"\n";
        let r = redact(text);
        assert!(
            !r.contains("c2VjcmV0") && !r.contains("1234") && !r.contains("abc"),
            "{r}"
        );
        assert!(r.contains("connection_string = \"<redacted>\""), "{r}");
        assert!(r.contains("device_id_pk = \"<redacted>\""), "{r}");
        assert!(r.contains("  user_pin = \"<redacted>\""), "{r}");
        assert!(
            r.contains("symmetric_key = \"keyd:edgesec/dps-key\""),
            "{r}"
        );
        assert!(r.contains("hostname = \"gw\""), "{r}");
        assert!(r.contains("SharedAccessKey=<redacted>;"), "{r}");
    }

    #[test]
    fn archives_unpack() {
        let bytes = pack(&[("a.txt".into(), b"hello".to_vec())]).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["support_bundle/a.txt"]);
    }
}
