//! The checks themselves, in the order they run.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use edgesec_keyd::api::SealedState;
use edgesec_keyd::client::KeydClient;
use edgesecd::config::Config;
use time::OffsetDateTime;

use super::{Check, Outcome};
use crate::ctx::Ctx;

const ALL: &[(&str, &str)] = &[
    ("config-well-formed", "config is well-formed"),
    ("state-dir-permissions", "state directory is private"),
    ("keyd-reachable", "keyd answers"),
    ("key-store-permissions", "key store files are private"),
    ("clock-sane", "clock can be trusted"),
    ("ca-expiry", "CA chain is valid"),
    ("certs-match-keys", "CA certificates match their keys"),
    ("sockets", "sockets present with safe modes"),
    ("daemon-running", "edgesecd answers"),
    ("agent-running", "agent is running"),
    ("disk-space", "free disk in the state directory"),
];

fn title(id: &str) -> &'static str {
    ALL.iter()
        .find(|(i, _)| *i == id)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

fn id(s: &str) -> &'static str {
    ALL.iter()
        .find(|(i, _)| *i == s)
        .map(|(i, _)| *i)
        .unwrap_or("")
}

pub(super) fn pass(i: &str, detail: impl Into<String>) -> Check {
    Check::pass(id(i), title(i), detail)
}

pub(super) fn not(
    i: &str,
    r: Outcome,
    detail: impl Into<String>,
    hint: impl Into<String>,
) -> Check {
    Check::with(id(i), title(i), r, detail, hint)
}

/// An I/O error's text without std's " (os error N)" suffix.
pub(super) fn io_msg(e: &std::io::Error) -> String {
    let t = e.to_string();
    match t.rfind(" (os error ") {
        Some(i) => t[..i].to_owned(),
        None => t,
    }
}

fn mode(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

pub async fn run_all(ctx: &Ctx) -> Vec<Check> {
    let c = match &ctx.config {
        Ok(c) => c,
        Err(e) => {
            let mut out = vec![not(
                "config-well-formed",
                Outcome::Fail,
                e.to_string(),
                "fix the key named above (`edgesec config check FILE` re-checks it), or pass --config",
            )];
            for (i, _) in &ALL[1..] {
                out.push(not(
                    i,
                    Outcome::Skip,
                    "needs a loadable config",
                    "fix the config first",
                ));
            }
            return out;
        }
    };
    let mut out = vec![pass(
        "config-well-formed",
        format!("{} loads", c.file.display()),
    )];
    out.push(state_dir_permissions(c));
    let keyd = KeydClient::new(&c.keyd.socket);
    let keyd_check = keyd_reachable(c, &keyd).await;
    let keyd_ok = keyd_check.result == Outcome::Pass;
    out.push(keyd_check);
    let sealed = if keyd_ok {
        keyd.sealed_state().await.ok().flatten()
    } else {
        None
    };
    out.push(with_sealed_state(key_store_permissions(c), sealed));
    out.push(clock_sane(c));
    out.push(super::pki::ca_expiry(c, OffsetDateTime::now_utc()));
    out.push(super::pki::certs_match_keys(c, keyd_ok.then_some(&keyd)).await);
    let mgmt = ctx
        .mgmt_socket()
        .unwrap_or_else(|_| c.management.socket.clone());
    out.push(sockets(c, &mgmt));
    let (daemon, agent) = daemon_and_agent(c, &mgmt).await;
    out.push(daemon);
    out.push(agent);
    out.push(disk_space(&c.state_dir));
    out
}

fn state_dir_permissions(c: &Config) -> Check {
    let i = "state-dir-permissions";
    let d = &c.state_dir;
    match std::fs::metadata(d) {
        Err(e) => not(
            i,
            Outcome::Fail,
            format!("{}: {}", d.display(), io_msg(&e)),
            "start edgesecd once (it creates the state directory 0700), or fix state_dir",
        ),
        Ok(m) if m.mode() & 0o022 != 0 => not(
            i,
            Outcome::Fail,
            format!(
                "{} is mode {}: others may write to it",
                d.display(),
                mode(m.mode())
            ),
            format!("chmod 700 {}", d.display()),
        ),
        Ok(m) if m.mode() & 0o077 != 0 => not(
            i,
            Outcome::Warn,
            format!(
                "{} is mode {}: others may read it",
                d.display(),
                mode(m.mode())
            ),
            format!("chmod 700 {}", d.display()),
        ),
        Ok(m) => pass(i, format!("{} is mode {}", d.display(), mode(m.mode()))),
    }
}

async fn keyd_reachable(c: &Config, keyd: &KeydClient) -> Check {
    let i = "keyd-reachable";
    match keyd.capabilities().await {
        Ok(caps) => pass(
            i,
            format!("{} backend on {}", caps.backend, c.keyd.socket.display()),
        ),
        Err(e) => not(
            i,
            Outcome::Fail,
            e.to_string(),
            if c.keyd.start_with_config.is_some() {
                "edgesecd starts keyd in this setup: start edgesecd".to_string()
            } else {
                "start edgesec-keyd (systemctl start edgesec-keyd) and check [keyd] socket in the config"
                    .to_string()
            },
        ),
    }
}

/// Files and directories under `dir` (three levels deep) that others may read or write.
fn loose_files(dir: &Path, depth: u32, out: &mut Vec<(PathBuf, u32)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.file_type().is_socket() {
            continue;
        }
        if m.mode() & 0o077 != 0 {
            out.push((e.path(), m.mode()));
        }
        if m.is_dir() && depth > 0 {
            loose_files(&e.path(), depth - 1, out);
        }
    }
}

fn key_store_permissions(c: &Config) -> Check {
    let i = "key-store-permissions";
    let Some(keyd_config) = &c.keyd.start_with_config else {
        return not(
            i,
            Outcome::Skip,
            "keyd runs as its own service; its config is not named in this one",
            "run the check on keyd's host as its user to see its state directory",
        );
    };
    let kc = match edgesec_keyd::config::Config::load(keyd_config) {
        Ok(k) => k,
        Err(e) => {
            return not(i, Outcome::Fail, e.to_string(), "fix keyd's config");
        }
    };
    let dir = &kc.state_dir;
    let m = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            return not(
                i,
                Outcome::Fail,
                format!("{}: {}", dir.display(), io_msg(&e)),
                "start keyd once (it creates its state directory 0700)",
            );
        }
    };
    let mut loose = Vec::new();
    if m.mode() & 0o077 != 0 {
        loose.push((dir.clone(), m.mode()));
    }
    loose_files(dir, 3, &mut loose);
    if let Some((p, md)) = loose.first() {
        return not(
            i,
            Outcome::Fail,
            format!(
                "{} is mode {}{}",
                p.display(),
                mode(*md),
                if loose.len() > 1 {
                    format!(" (and {} more)", loose.len() - 1)
                } else {
                    String::new()
                }
            ),
            format!("chmod -R go-rwx {}", dir.display()),
        );
    }
    pass(
        i,
        format!("{} and its files are private to their owner", dir.display()),
    )
}

/// The key store check, unless it already failed, becomes a warning when keyd's master key is
/// sealed under an empty owner authorization: anyone with TPM access can then unseal it.
fn with_sealed_state(files: Check, sealed: Option<SealedState>) -> Check {
    match sealed {
        Some(SealedState {
            owner_auth_set: Some(false),
        }) if files.result != Outcome::Fail => not(
            "key-store-permissions",
            Outcome::Warn,
            "keyd's master key is sealed to the TPM, but the TPM's owner hierarchy has no \
             authorization value: anyone with TPM access can unseal it through the owner branch",
            "set an owner password (tpm2_changeauth -c owner) and name a 0600 file holding it in \
             keyd.toml: [tpm] owner_auth_file (docs/keyd-protocol.md, TPM section)",
        ),
        _ => files,
    }
}

fn clock_sane(c: &Config) -> Check {
    let i = "clock-sane";
    let check = edgesec_pki::clock::ClockCheck::open(&c.state_dir);
    match check.check(OffsetDateTime::now_utc()) {
        Ok(()) => pass(
            i,
            "the clock is later than the build time and the last time seen",
        ),
        Err(e) => not(
            i,
            Outcome::Fail,
            e.to_string(),
            "set the clock (enable NTP: timedatectl set-ntp true); edgesecd issues no certificates until it is right",
        ),
    }
}

fn sockets(c: &Config, mgmt: &Path) -> Check {
    let i = "sockets";
    let mut parts = Vec::new();
    for (name, path, private) in [
        ("management", mgmt, true),
        ("keyd", c.keyd.socket.as_path(), true),
        ("workload", c.workload.socket.as_path(), false),
    ] {
        let m = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                return not(
                    i,
                    Outcome::Fail,
                    format!("{name} socket {}: {}", path.display(), io_msg(&e)),
                    "start edgesecd (it creates its sockets; keyd creates its own)",
                );
            }
        };
        if !m.file_type().is_socket() {
            return not(
                i,
                Outcome::Fail,
                format!("{} is not a socket", path.display()),
                "remove the file and restart edgesecd",
            );
        }
        if private && m.mode() & 0o006 != 0 {
            return not(
                i,
                Outcome::Fail,
                format!(
                    "{name} socket {} is mode {}: every user may connect",
                    path.display(),
                    mode(m.mode())
                ),
                format!(
                    "chmod 660 {} and restart the service that made it",
                    path.display()
                ),
            );
        }
        parts.push(format!("{name} {}", mode(m.mode())));
    }
    pass(i, parts.join(", "))
}

async fn daemon_and_agent(c: &Config, mgmt: &Path) -> (Check, Check) {
    let client = edgesec_api::mgmt_client::MgmtClient::new(mgmt);
    let status = match client.status().await {
        Ok(s) => s,
        Err(e) => {
            let hint = crate::error::CliError::mgmt(e, mgmt);
            return (
                not(
                    "daemon-running",
                    Outcome::Fail,
                    hint.message,
                    hint.hint.unwrap_or_default(),
                ),
                not(
                    "agent-running",
                    Outcome::Skip,
                    "edgesecd does not answer",
                    "see daemon-running",
                ),
            );
        }
    };
    let daemon = pass(
        "daemon-running",
        format!("edgesecd {} answers on {}", status.version, mgmt.display()),
    );
    let name = &c.agent.name;
    let agent = match client.get_module(name).await {
        Ok(m) if m.status.runtime_status.status == "running" => {
            pass("agent-running", format!("{name} is running"))
        }
        Ok(m) => not(
            "agent-running",
            Outcome::Fail,
            format!("{name} is {}", m.status.runtime_status.status),
            format!("`edgesec logs {name}` shows why; edgesecd's watchdog restarts it"),
        ),
        Err(e) => not(
            "agent-running",
            Outcome::Fail,
            format!("{name}: {e}"),
            "check [agent] in the config and edgesecd's log",
        ),
    };
    (daemon, agent)
}

/// (available bytes, total bytes) of the file system holding `path`.
pub fn free_space(path: &Path) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a struct we own from a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize))
}

fn disk_space(dir: &Path) -> Check {
    let i = "disk-space";
    let Some((free, total)) = free_space(dir) else {
        return not(
            i,
            Outcome::Skip,
            format!("cannot stat {}", dir.display()),
            "check state_dir",
        );
    };
    let pct = if total == 0 {
        100.0
    } else {
        free as f64 * 100.0 / total as f64
    };
    let mib = free / (1 << 20);
    let detail = format!("{mib} MiB free ({pct:.0}%) in {}", dir.display());
    let hint = "free space there: edgesecd writes state and certificates atomically and needs room for a copy";
    match disk_outcome(mib, pct) {
        Outcome::Pass => pass(i, detail),
        o => not(i, o, detail, hint),
    }
}

/// Absolute sizes decide: what edgesecd writes is small, so 5% of a large disk is plenty;
/// the percentage only matters on small flash, where it is also little space.
fn disk_outcome(free_mib: u64, free_pct: f64) -> Outcome {
    if free_mib < 20 {
        Outcome::Fail
    } else if free_mib < 200 || (free_pct < 5.0 && free_mib < 1024) {
        Outcome::Warn
    } else {
        Outcome::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_owner_auth_under_a_sealed_store_is_a_warning() {
        let files = || pass("key-store-permissions", "private");
        let state = |set| {
            Some(SealedState {
                owner_auth_set: set,
            })
        };
        for sealed in [None, state(Some(true)), state(None)] {
            assert_eq!(with_sealed_state(files(), sealed).result, Outcome::Pass);
        }
        let w = with_sealed_state(files(), state(Some(false)));
        assert_eq!(w.result, Outcome::Warn);
        assert_eq!(w.id, "key-store-permissions");
        // A failed file check stays the failure: it is the worse news.
        let failed = not("key-store-permissions", Outcome::Fail, "loose", "chmod");
        let f = with_sealed_state(failed, state(Some(false)));
        assert_eq!(f.result, Outcome::Fail);
    }

    #[test]
    fn disk_space_thresholds() {
        assert_eq!(disk_outcome(19, 50.0), Outcome::Fail);
        assert_eq!(disk_outcome(150, 50.0), Outcome::Warn);
        assert_eq!(disk_outcome(800, 3.0), Outcome::Warn);
        // 12 GiB free on a 250 GiB disk is under 5% and still plenty.
        assert_eq!(disk_outcome(12 * 1024, 4.8), Outcome::Pass);
        assert_eq!(disk_outcome(800, 40.0), Outcome::Pass);
    }
}
