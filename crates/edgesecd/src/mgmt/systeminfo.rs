//! `/systeminfo` and `/systeminfo/resources`.

use std::collections::BTreeMap;

use edgesec_api::mgmt::{Disk, ProvisioningInfo, SystemInfo, SystemResources};
use edgesec_http::{ApiError, Response, json_response};
use http::StatusCode;

use crate::daemon::Daemon;

fn uname() -> (String, String, String, String) {
    // SAFETY: uname fills a struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (s(&u.sysname), s(&u.release), s(&u.version), s(&u.machine))
}

fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix('=')
            .map(|v| v.trim_matches('"').to_owned())
    })
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| {
                    l.strip_prefix(key)
                        .map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
        * 1024
}

pub fn info(d: &Daemon) -> Result<Response, ApiError> {
    let (sysname, release, version, machine) = uname();
    let arch = match machine.as_str() {
        "x86_64" => "x86_64".to_owned(),
        "aarch64" => "aarch64".to_owned(),
        other => other.to_owned(),
    };
    let mut additional = BTreeMap::new();
    additional.insert("device_id".into(), serde_json::json!(d.hub_and_device().1));
    additional.insert("module_runtime".into(), serde_json::json!("process"));
    let info = SystemInfo {
        os_type: sysname,
        architecture: arch,
        version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: release,
        kernel_version: version,
        operating_system: os_release("ID"),
        operating_system_version: os_release("VERSION_ID"),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        total_memory: meminfo("MemTotal:"),
        virtualized: "unknown".into(),
        provisioning: ProvisioningInfo {
            source: format!("{:?}", d.config.provisioning.source).to_lowercase(),
            dynamic_reprovisioning: d.config.provisioning.reprovisioning
                == crate::config::ReprovisionMode::Dynamic,
            always_reprovision_on_startup: d.config.provisioning.reprovisioning
                == crate::config::ReprovisionMode::AlwaysOnStartup,
        },
        additional,
    };
    Ok(json_response(StatusCode::OK, &info))
}

fn disk(path: &std::path::Path) -> Option<Disk> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a struct we own from a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(Disk {
        name: path.display().to_string(),
        available_space: s.f_bavail * s.f_frsize,
        total_space: s.f_blocks * s.f_frsize,
        file_system: String::new(),
        file_type: String::new(),
    })
}

/// CPU use in percent since the previous call (since boot on the first call), from /proc/stat.
fn cpu_percent() -> f64 {
    static LAST: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));
    let Some((busy, total)) = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
        let v: Vec<u64> = t
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).unwrap_or(&0);
        Some((total - idle, total))
    }) else {
        return 0.0;
    };
    let mut last = LAST.lock().expect("lock");
    let (db, dt) = (busy.saturating_sub(last.0), total.saturating_sub(last.1));
    *last = (busy, total);
    if dt == 0 {
        0.0
    } else {
        db as f64 * 100.0 / dt as f64
    }
}

pub fn resources(d: &Daemon) -> Result<Response, ApiError> {
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split('.').next()?.parse().ok())
        .unwrap_or(0);
    let total = meminfo("MemTotal:");
    let r = SystemResources {
        host_uptime: uptime,
        process_uptime: d.started.elapsed().as_secs(),
        used_cpu: cpu_percent(),
        used_ram: total.saturating_sub(meminfo("MemAvailable:")),
        total_ram: total,
        disks: disk(&d.config.state_dir).into_iter().collect(),
        docker_stats: String::new(),
    };
    Ok(json_response(StatusCode::OK, &r))
}
