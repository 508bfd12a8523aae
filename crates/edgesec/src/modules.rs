//! `list`, `restart` and `identity list`.

use std::time::{Duration, SystemTime};

use edgesec_api::mgmt::{ModuleDetails, ModuleList};

use crate::ctx::Ctx;
use crate::error::{CliError, Result};
use crate::ui::{Style, Table, human_duration, waiting};

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

fn since(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

/// The DESCRIPTION column, worded as `iotedge list` does: `Up 3 minutes`, `Stopped 2 hours
/// ago`, `Failed (137) 5 minutes ago`, `Unknown`.
pub fn describe(m: &ModuleDetails, now: SystemTime) -> String {
    let s = &m.status;
    let exit = s.exit_status.as_ref();
    let ago = |t: Option<SystemTime>| {
        t.map(|t| format!(" {} ago", human_duration(since(t, now))))
            .unwrap_or_default()
    };
    match s.runtime_status.status.as_str() {
        "running" => match s.start_time.as_deref().and_then(parse_time) {
            Some(t) => format!("Up {}", human_duration(since(t, now))),
            None => "Up".into(),
        },
        "stopped" => format!(
            "Stopped{}",
            ago(exit.and_then(|e| parse_time(&e.exit_time)))
        ),
        "failed" | "dead" => {
            let code = exit.map(|e| e.status_code.as_str()).unwrap_or("?");
            format!(
                "Failed ({code}){}",
                ago(exit.and_then(|e| parse_time(&e.exit_time)))
            )
        }
        _ => "Unknown".into(),
    }
}

/// The CONFIG column: the image of a docker module, the command line of a process module.
pub fn config_of(m: &ModuleDetails) -> String {
    let s = &m.config.settings;
    if let Some(image) = s.get("image").and_then(|v| v.as_str()) {
        return image.to_owned();
    }
    let mut out = s
        .get("command")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    for a in s
        .get("args")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let a = a.as_str().unwrap_or_default();
        out.push(' ');
        if a.is_empty() || a.contains(char::is_whitespace) {
            out.push_str(&format!("{a:?}"));
        } else {
            out.push_str(a);
        }
    }
    if out.chars().count() > 60 {
        out = out.chars().take(57).collect::<String>() + "...";
    }
    out
}

pub fn render_list(mods: &[ModuleDetails], now: SystemTime, style: Style) -> String {
    let mut t = Table::new(&["NAME", "STATUS", "DESCRIPTION", "CONFIG"]);
    let mut mods: Vec<&ModuleDetails> = mods.iter().collect();
    mods.sort_by(|a, b| a.name.cmp(&b.name));
    for m in mods {
        let status = &m.status.runtime_status.status;
        let painted = match status.as_str() {
            "running" => style.green(status),
            "failed" | "dead" => style.red(status),
            "stopped" => style.yellow(status),
            _ => status.clone(),
        };
        t.row(vec![
            m.name.clone(),
            painted,
            describe(m, now),
            config_of(m),
        ]);
    }
    t.render()
}

pub async fn list(ctx: &Ctx, json: bool, style: Style) -> Result<()> {
    let (client, sock) = ctx.mgmt()?;
    let modules = waiting("asking edgesecd", client.list_modules())
        .await
        .map_err(|e| CliError::mgmt(e, &sock))?;
    if json {
        let out = serde_json::to_string_pretty(&ModuleList { modules }).expect("serializable");
        println!("{out}");
    } else {
        print!("{}", render_list(&modules, SystemTime::now(), style));
    }
    Ok(())
}

pub async fn restart(ctx: &Ctx, module: &str) -> Result<()> {
    let (client, sock) = ctx.mgmt()?;
    waiting(
        &format!("restarting {module}"),
        client.module_action(module, "restart"),
    )
    .await
    .map_err(|e| CliError::mgmt(e, &sock))?;
    println!("Restarted {module}");
    Ok(())
}

pub async fn identities(ctx: &Ctx, json: bool) -> Result<()> {
    let (client, sock) = ctx.mgmt()?;
    let mut ids = waiting("asking edgesecd", client.list_identities())
        .await
        .map_err(|e| CliError::mgmt(e, &sock))?;
    ids.sort_by(|a, b| a.module_id.cmp(&b.module_id));
    if json {
        let v = serde_json::json!({ "identities": ids });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serializable")
        );
        return Ok(());
    }
    let mut t = Table::new(&["MODULE", "GENERATION ID", "AUTH", "MANAGED BY"]);
    for i in ids {
        t.row(vec![
            i.module_id,
            i.generation_id,
            i.auth_type,
            i.managed_by,
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(status: &str, start: Option<&str>, exit: Option<(&str, &str)>) -> ModuleDetails {
        serde_json::from_value(serde_json::json!({
            "id": "m", "name": "m", "type": "process",
            "config": { "settings": { "command": "/bin/sh", "args": ["-c", "echo hi"] } },
            "status": {
                "startTime": start,
                "exitStatus": exit.map(|(t, c)| serde_json::json!({"exitTime": t, "statusCode": c})),
                "runtimeStatus": { "status": status }
            }
        }))
        .unwrap()
    }

    #[test]
    fn descriptions_read_like_iotedge_list() {
        let now = humantime::parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let m = module("running", Some("2026-01-01T11:57:00Z"), None);
        assert_eq!(describe(&m, now), "Up 3 minutes");
        let m = module("failed", None, Some(("2026-01-01T11:55:00Z", "137")));
        assert_eq!(describe(&m, now), "Failed (137) 5 minutes ago");
        let m = module("stopped", None, Some(("2026-01-01T10:00:00Z", "0")));
        assert_eq!(describe(&m, now), "Stopped 2 hours ago");
        assert_eq!(describe(&module("stopped", None, None), now), "Stopped");
        assert_eq!(describe(&module("unknown", None, None), now), "Unknown");
        assert_eq!(config_of(&m), "/bin/sh -c \"echo hi\"");
    }
}
