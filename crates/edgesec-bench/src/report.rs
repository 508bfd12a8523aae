//! Figures, their targets (DESIGN.md's performance budget), the table and the JSON report.

use serde::Serialize;

use crate::hist::Histogram;

/// A budget line: the value must be at least `min` or at most `max`, and the p99 latency at
/// most `p99_max_ms`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Target {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_max_ms: Option<f64>,
}

impl Target {
    pub fn at_least(min: f64, text: &str) -> Target {
        Target {
            text: text.into(),
            min: Some(min),
            ..Default::default()
        }
    }

    pub fn at_most(max: f64, text: &str) -> Target {
        Target {
            text: text.into(),
            max: Some(max),
            ..Default::default()
        }
    }

    pub fn with_p99(mut self, ms: f64) -> Target {
        self.p99_max_ms = Some(ms);
        self
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub samples: u64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Option<Latency> {
        Some(Latency {
            p50_ms: h.quantile_ms(0.5)?,
            p99_ms: h.quantile_ms(0.99)?,
            p999_ms: h.quantile_ms(0.999)?,
            max_ms: h.quantile_ms(1.0)?,
            samples: h.count(),
        })
    }
}

/// CPU time spent per counted request during the measured window, by process.
#[derive(Clone, Debug, Serialize)]
pub struct CpuCost {
    /// The services' share (edgesecd + keyd, or keyd alone): the figure to drive down.
    pub server_us_per_req: f64,
    pub parts: Vec<CpuPart>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuPart {
    pub process: String,
    pub us_per_req: f64,
    /// Cores this process kept busy on average.
    pub cores: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub id: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuCost>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Whether the target is met (absent without a target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// The raw limit this figure is compared with, and the ratio value / limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Failed requests during the measured window (they are not in the value).
    #[serde(skip_serializing_if = "is_zero")]
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize)]
pub struct Limit {
    pub id: String,
    pub name: String,
    pub value: f64,
}

impl Figure {
    pub fn new(id: &str, name: &str, value: f64, unit: &str) -> Figure {
        Figure {
            id: id.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            clients: None,
            latency: None,
            cpu: None,
            target: None,
            met: None,
            limit: None,
            ratio: None,
            errors: 0,
            first_error: None,
            note: None,
        }
    }

    pub fn target(mut self, t: Target) -> Figure {
        let mut met = true;
        if let Some(min) = t.min {
            met &= self.value >= min;
        }
        if let Some(max) = t.max {
            met &= self.value <= max;
        }
        if let Some(p99) = t.p99_max_ms {
            met &= self.latency.as_ref().is_some_and(|l| l.p99_ms <= p99);
        }
        met &= self.errors == 0;
        self.met = Some(met);
        self.target = Some(t);
        self
    }

    pub fn limit(mut self, limit: Option<&Figure>) -> Figure {
        if let Some(l) = limit.filter(|l| l.value > 0.0) {
            self.ratio = Some(self.value / l.value);
            self.limit = Some(Limit {
                id: l.id.clone(),
                name: l.name.clone(),
                value: l.value,
            });
        }
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }
}

fn num(v: f64, unit: &str) -> String {
    if unit == "ms" || unit == "MiB" {
        format!("{v:.1}")
    } else if v >= 100.0 {
        let s = format!("{:.0}", v);
        // thousands separators
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{v:.1}")
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// The figures as a text table (also valid Markdown).
pub fn table(figures: &[Figure]) -> String {
    let mut rows = vec![
        [
            "figure",
            "value",
            "unit",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "srv CPU us/req",
            "target",
            "met",
            "raw limit",
            "ratio",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for f in figures {
        let lat = f.latency.as_ref();
        let mut name = f.name.clone();
        if f.errors > 0 {
            name.push_str(&format!(" ({} errors)", f.errors));
        }
        rows.push(vec![
            name,
            num(f.value, &f.unit),
            f.unit.clone(),
            lat.map(|l| ms(l.p50_ms)).unwrap_or_default(),
            lat.map(|l| ms(l.p99_ms)).unwrap_or_default(),
            lat.map(|l| ms(l.p999_ms)).unwrap_or_default(),
            f.cpu
                .as_ref()
                .map(|c| format!("{:.1}", c.server_us_per_req))
                .unwrap_or_default(),
            f.target
                .as_ref()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
            match f.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => String::new(),
            },
            f.limit
                .as_ref()
                .map(|l| num(l.value, "/s"))
                .unwrap_or_default(),
            f.ratio.map(|r| format!("{r:.3}")).unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 || c == 7 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("| {} |\n", rule.join(" | ")));
        }
    }
    out
}

/// What the figures were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mib: u64,
}

impl Machine {
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb / 1024)
            .unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            memory_mib,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub smoke: bool,
    pub build_profile: String,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub start_runs: usize,
}

/// The 1-minute load average: other work on the machine during the run shows here.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub date_utc: String,
    pub machine: Machine,
    /// 1-minute load average when the run started and when it ended.
    pub load_average: [f64; 2],
    pub settings: Settings,
    pub figures: Vec<Figure>,
    pub targets_missed: Vec<String>,
    /// What could not be measured cleanly (the run exits non-zero).
    pub problems: Vec<String>,
    pub missing_binaries: Vec<String>,
}
