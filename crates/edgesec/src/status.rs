//! `system status`: what the daemon reports about itself (`GET /status`).

use std::time::Duration;

use edgesec_api::mgmt::DaemonStatus;

use crate::ctx::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{Style, human_duration, waiting};

pub async fn fetch(ctx: &Ctx) -> Result<DaemonStatus> {
    let (client, sock) = ctx.mgmt()?;
    waiting("asking edgesecd", client.status())
        .await
        .map_err(|e| CliError::mgmt(e, &sock))
}

fn days(n: i64, style: Style) -> String {
    let text = match n {
        ..=-1 => format!("expired {} days ago", -n),
        1 => "1 day left".to_string(),
        _ => format!("{n} days left"),
    };
    match n {
        ..=-1 => style.red(&text),
        0..7 => style.yellow(&text),
        _ => text,
    }
}

pub fn render(s: &DaemonStatus, style: Style) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<12}{v}\n", style.bold(k)));
    line(
        "Daemon",
        format!(
            "edgesecd {}, up {}",
            s.version,
            human_duration(Duration::from_secs(s.uptime_secs))
        ),
    );
    let ks = &s.key_store;
    match (&ks.backend, &ks.error) {
        (Some(b), _) => {
            let kind = if ks.hardware_backed {
                "hardware-backed"
            } else if ks.routes.iter().any(|r| r.contains("(hardware-backed)")) {
                "some keys hardware-backed"
            } else {
                "software"
            };
            line("Key store", format!("{b} ({kind})"));
            for route in &ks.routes {
                line("", format!("  {route}"));
            }
            line("", ks.capabilities.join(", "));
        }
        (None, e) => line(
            "Key store",
            style.red(&format!(
                "not reachable: {}",
                e.as_deref().unwrap_or("unknown error")
            )),
        ),
    }
    let hub = if s.device.hub.is_empty() {
        String::new()
    } else {
        format!(" on {}", s.device.hub)
    };
    let d = &s.device;
    line(
        "Device",
        format!("{}{hub} (provisioning: {})", d.id, d.source),
    );
    if let Some(cred) = &d.credential {
        let mut how = format!("{cred} credential");
        if let Some(r) = &d.registration_id {
            how.push_str(&format!(", registration {r}"));
        }
        if let Some(m) = &d.reprovisioning {
            how.push_str(&format!(", reprovisioning {m}"));
        }
        line("", how);
    }
    if d.source == "dps" {
        let when = d.provisioned_at.as_deref().unwrap_or("unknown time");
        line(
            "",
            if d.from_cache {
                style.yellow(&format!(
                    "from the cached assignment of {when} (DPS not reached at this boot)"
                ))
            } else {
                format!("assigned by DPS at {when}")
            },
        );
    }
    let ca = &s.ca;
    if ca.ready {
        line(
            "Edge CA",
            format!(
                "{} mode, {}",
                ca.mode,
                ca.days_left.map(|d| days(d, style)).unwrap_or_default()
            ),
        );
        for c in &ca.chain {
            line(
                "",
                format!(
                    "{}  until {}  {}",
                    c.subject,
                    c.not_after,
                    days(c.days_left, style)
                ),
            );
        }
    } else {
        line(
            "Edge CA",
            style.red(&format!("{} mode, no chain loaded yet", ca.mode)),
        );
    }
    if let Some(e) = &ca.clock_error {
        line("Clock", style.red(&format!("not trusted: {e}")));
    }
    let m = &s.modules;
    line(
        "Modules",
        format!(
            "{} total: {} running, {} failed, {} stopped",
            m.total, m.running, m.failed, m.stopped
        ),
    );
    out
}

/// `system reprovision`: asks the daemon to provision again, then shows where the device is.
pub async fn reprovision(ctx: &Ctx, style: Style) -> Result<()> {
    let (client, sock) = ctx.mgmt()?;
    waiting("provisioning again", client.reprovision())
        .await
        .map_err(|e| CliError::mgmt(e, &sock))?;
    let s = fetch(ctx).await?;
    let hub = if s.device.hub.is_empty() {
        String::new()
    } else {
        format!(" on {}", s.device.hub)
    };
    println!(
        "{} device {}{hub} (provisioning: {})",
        style.green("Reprovisioned:"),
        s.device.id,
        s.device.source
    );
    Ok(())
}

pub async fn system_status(ctx: &Ctx, json: bool, style: Style) -> Result<()> {
    let s = fetch(ctx).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("serializable")
        );
    } else {
        print!("{}", render(&s, style));
    }
    Ok(())
}
