//! `check`: each check is data — an id, a title, a result, a detail and a hint — so text and
//! JSON output are two renderings of one list. The exit code is non-zero when a check fails
//! (or warns, with `--warnings-as-errors`).

mod checks;
mod pki;

use serde::Serialize;

use crate::ctx::Ctx;
use crate::ui::Style;

/// The JSON document's format version.
pub const FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub result: Outcome,
    pub detail: String,
    /// What to do about a warning or failure (or why a check was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(id: &'static str, title: &'static str, detail: impl Into<String>) -> Check {
        Check {
            id,
            title,
            result: Outcome::Pass,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn with(
        id: &'static str,
        title: &'static str,
        result: Outcome,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            id,
            title,
            result,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub format: u32,
    pub config: String,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

impl Report {
    pub fn new(config: String, checks: Vec<Check>) -> Report {
        let mut summary = Summary::default();
        for c in &checks {
            *match c.result {
                Outcome::Pass => &mut summary.pass,
                Outcome::Warn => &mut summary.warn,
                Outcome::Fail => &mut summary.fail,
                Outcome::Skip => &mut summary.skip,
            } += 1;
        }
        Report {
            format: FORMAT,
            config,
            checks,
            summary,
        }
    }

    pub fn failed(&self, warnings_as_errors: bool) -> bool {
        self.summary.fail > 0 || (warnings_as_errors && self.summary.warn > 0)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serializable")
    }

    pub fn to_text(&self, style: Style) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let mark = match (c.result, style.unicode) {
                (Outcome::Pass, true) => style.green("✓"),
                (Outcome::Warn, true) => style.yellow("⚠"),
                (Outcome::Fail, true) => style.red("✗"),
                (Outcome::Skip, true) => style.dim("-"),
                (Outcome::Pass, false) => "[ok]  ".into(),
                (Outcome::Warn, false) => "[warn]".into(),
                (Outcome::Fail, false) => "[FAIL]".into(),
                (Outcome::Skip, false) => "[skip]".into(),
            };
            out.push_str(&format!(
                "{mark} {:<width$}  {}: {}\n",
                c.id, c.title, c.detail
            ));
            if let (Some(h), true) = (&c.hint, c.result != Outcome::Pass) {
                let pad = if style.unicode { 2 } else { 7 };
                out.push_str(&format!(
                    "{}{}\n",
                    " ".repeat(pad + width + 2),
                    style.dim(&format!("hint: {h}"))
                ));
            }
        }
        let s = &self.summary;
        out.push_str(&format!(
            "\n{} passed, {} warnings, {} failed, {} skipped\n",
            s.pass, s.warn, s.fail, s.skip
        ));
        out
    }
}

pub async fn run(ctx: &Ctx) -> Report {
    let checks = checks::run_all(ctx).await;
    Report::new(ctx.config_path.display().to_string(), checks)
}

/// `edgesec check`: prints the report; returns whether it failed.
pub async fn check(ctx: &Ctx, json: bool, warnings_as_errors: bool, style: Style) -> bool {
    let report = crate::ui::waiting("running checks", run(ctx)).await;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text(style));
    }
    report.failed(warnings_as_errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_render_one_list() {
        let r = Report::new(
            "/etc/edgesec/config.toml".into(),
            vec![
                Check::pass("config-well-formed", "config is well-formed", "ok"),
                Check::with(
                    "ca-expiry",
                    "CA chain valid",
                    Outcome::Fail,
                    "expired",
                    "restart edgesecd to renew it",
                ),
            ],
        );
        assert!(r.failed(false));
        let text = r.to_text(Style::plain());
        assert!(
            text.contains("[ok]   config-well-formed  config is well-formed: ok"),
            "{text}"
        );
        assert!(
            text.contains("[FAIL] ca-expiry           CA chain valid: expired\n"),
            "{text}"
        );
        assert!(text.contains("hint: restart edgesecd"), "{text}");
        assert!(text.ends_with("1 passed, 0 warnings, 1 failed, 0 skipped\n"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["checks"][1]["result"], "fail");
        assert_eq!(v["summary"]["fail"], 1);
        assert!(v["checks"][0].get("hint").is_none());
    }

    #[test]
    fn warnings_fail_only_when_asked() {
        let r = Report::new(
            String::new(),
            vec![Check::with("x", "x", Outcome::Warn, "w", "h")],
        );
        assert!(!r.failed(false));
        assert!(r.failed(true));
    }
}
