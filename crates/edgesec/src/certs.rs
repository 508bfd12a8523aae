//! `cert list` and `cert show ID`.

use time::OffsetDateTime;

use crate::ctx::Ctx;
use crate::error::{CliError, Result};
use crate::pkifiles::{CertEntry, all_entries, days_left, issuer, sans};
use crate::ui::{Style, Table};

fn entries(ctx: &Ctx) -> Result<Vec<CertEntry>> {
    let c = ctx.config()?;
    all_entries(c).map_err(|e| {
        CliError::new(
            e,
            format!(
                "run as root or as the user edgesecd runs as, so {} can be read",
                c.state_dir.display()
            ),
        )
    })
}

fn days_text(d: i64, style: Style) -> String {
    match d {
        ..=-1 => style.red(&format!("expired ({d})")),
        0..7 => style.yellow(&d.to_string()),
        _ => d.to_string(),
    }
}

fn entry_json(e: &CertEntry, now: OffsetDateTime) -> serde_json::Value {
    let c = &e.certs[0];
    serde_json::json!({
        "id": e.id,
        "path": e.path,
        "subject": c.subject,
        "sans": sans(&c.der),
        "issuer": issuer(&c.der),
        "not_before": edgesec_pki::rfc3339(c.not_before),
        "not_after": edgesec_pki::rfc3339(c.not_after),
        "days_left": days_left(c.not_after, now),
        "is_ca": c.is_ca,
        "key": e.key,
        "chain": e.certs[1..].iter().map(|x| x.subject.clone()).collect::<Vec<_>>(),
    })
}

pub fn list(ctx: &Ctx, json: bool, style: Style) -> Result<()> {
    let list = entries(ctx)?;
    let now = OffsetDateTime::now_utc();
    if json {
        let v: Vec<_> = list.iter().map(|e| entry_json(e, now)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serializable")
        );
        return Ok(());
    }
    if list.is_empty() {
        println!("No certificates yet: edgesecd makes the CA chain when it first starts.");
        return Ok(());
    }
    let mut t = Table::new(&["ID", "SUBJECT", "NOT AFTER", "DAYS LEFT", "KEY"]);
    for e in &list {
        let c = &e.certs[0];
        t.row(vec![
            e.id.clone(),
            c.subject.clone(),
            edgesec_pki::rfc3339(c.not_after),
            days_text(days_left(c.not_after, now), style),
            e.key.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub fn show(ctx: &Ctx, id: &str, json: bool, style: Style) -> Result<()> {
    let list = entries(ctx)?;
    let Some(e) = list.iter().find(|e| e.id == id) else {
        let ids: Vec<&str> = list.iter().map(|e| e.id.as_str()).collect();
        return Err(CliError::new(
            format!("no certificate with id {id:?}"),
            format!(
                "`edgesec cert list` shows the ids; there are: {}",
                ids.join(", ")
            ),
        ));
    };
    let now = OffsetDateTime::now_utc();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entry_json(e, now)).expect("serializable")
        );
        return Ok(());
    }
    let c = &e.certs[0];
    let sans = sans(&c.der);
    let rows = [
        ("ID", e.id.clone()),
        ("File", e.path.display().to_string()),
        ("Subject", c.subject.clone()),
        (
            "SANs",
            if sans.is_empty() {
                "none".into()
            } else {
                sans.join(", ")
            },
        ),
        ("Issuer", issuer(&c.der)),
        ("Not before", edgesec_pki::rfc3339(c.not_before)),
        ("Not after", edgesec_pki::rfc3339(c.not_after)),
        ("Days left", days_text(days_left(c.not_after, now), style)),
        ("CA", if c.is_ca { "yes" } else { "no" }.into()),
        ("Key", e.key.clone()),
    ];
    for (k, v) in rows {
        println!("{:<12}{v}", style.bold(k));
    }
    for (i, x) in e.certs[1..].iter().enumerate() {
        println!(
            "{:<12}{}  until {}",
            style.bold(if i == 0 { "Chain" } else { "" }),
            x.subject,
            edgesec_pki::rfc3339(x.not_after)
        );
    }
    Ok(())
}
