//! The orchestrator: every figure in order, each next to its target and raw limit.

use std::path::PathBuf;
use std::time::Duration;

use crate::hist::Histogram;
use crate::report::{
    CpuCost, CpuPart, Figure, Latency, Machine, Report, Settings, load_average, table,
};
use crate::sys::{self, Bins, PROFILE};
use crate::worker::JobResult;

/// Worker module processes per daemon. A load of N clients runs on ceil(N / 4) of them, at
/// most all: 1 = 1 x 1, 16 = 4 x 4, 64 = 8 x 8 (under the workload socket's default limit of
/// 10 connections per uid and socket).
pub(crate) const WORKERS: usize = 8;
pub(crate) const CLIENTS_PER_WORKER: usize = 4;
pub(crate) const KEYD_CLIENTS: usize = 8;
pub(crate) const SIGN_CLIENTS: [usize; 3] = [1, 16, 64];
pub(crate) const TRUST_BUNDLE_CLIENTS: usize = 16;
pub(crate) const CERT_CLIENTS: usize = 8;

pub struct Options {
    pub out: Option<PathBuf>,
    pub warmup: Duration,
    pub duration: Duration,
    pub start_runs: usize,
    pub smoke: bool,
    pub no_build: bool,
    /// Groups to run (all when empty): raw, sizes, keyd, start, workload, rsa.
    pub only: Vec<String>,
}

impl Options {
    fn wants(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

pub(crate) struct Run<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) bins: Bins,
    pub(crate) figures: Vec<Figure>,
    pub(crate) problems: Vec<String>,
    /// Binaries that were not there to be measured.
    pub(crate) missing: Vec<String>,
}

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

impl Run<'_> {
    pub(crate) fn push(&mut self, f: Figure) {
        if f.errors > 0 {
            self.problems.push(format!(
                "{}: {} failed requests, first: {}",
                f.name,
                f.errors,
                f.first_error.as_deref().unwrap_or("?")
            ));
        }
        eprintln!("  {:<52} {:>12.1} {}", f.name, f.value, f.unit);
        self.figures.push(f);
    }

    pub(crate) fn find(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.id == id)
    }

    /// A throughput figure from merged results.
    pub(crate) fn load_figure(
        &self,
        id: &str,
        name: &str,
        unit: &str,
        clients: usize,
        r: Loaded,
    ) -> Figure {
        let mut f = Figure::new(
            id,
            name,
            r.ok as f64 / self.opts.duration.as_secs_f64(),
            unit,
        );
        f.clients = Some(clients);
        f.latency = Latency::of(&r.hist);
        f.errors = r.errors;
        f.first_error = r.first_error;
        f.cpu = r.cpu;
        f
    }
}

/// Merged results of the workers of one load.
pub(crate) struct Loaded {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) hist: Histogram,
    pub(crate) cpu: Option<CpuCost>,
}

impl Loaded {
    pub(crate) fn merge(results: Vec<JobResult>) -> Loaded {
        let mut l = Loaded {
            ok: 0,
            errors: 0,
            first_error: None,
            hist: Histogram::default(),
            cpu: None,
        };
        for r in results {
            l.ok += r.ok;
            l.errors += r.errors;
            if l.first_error.is_none() {
                l.first_error = r.first_error.map(|e| format!("{}: {e}", r.module));
            }
            l.hist.merge(&Histogram::from_wire(&r.hist));
        }
        l
    }
}

/// The CPU cost per request of each process; the first `servers` are the services.
pub(crate) fn cpu_cost(
    procs: &[(String, Option<i32>)],
    cpu: &[Option<Duration>],
    requests: u64,
    window: Duration,
    servers: usize,
) -> Option<CpuCost> {
    if requests == 0 || cpu.len() != procs.len() {
        return None;
    }
    let mut parts = Vec::new();
    let mut clients = (0.0, 0.0);
    for (i, ((name, _), used)) in procs.iter().zip(cpu).enumerate() {
        let used = (*used)?.as_secs_f64();
        let (us, cores) = (used * 1e6 / requests as f64, used / window.as_secs_f64());
        if i < servers {
            parts.push(CpuPart {
                process: name.clone(),
                us_per_req: us,
                cores,
            });
        } else {
            clients.0 += us;
            clients.1 += cores;
        }
    }
    let server_us_per_req = parts.iter().map(|p| p.us_per_req).sum();
    if procs.len() > servers {
        parts.push(CpuPart {
            process: "clients".into(),
            us_per_req: clients.0,
            cores: clients.1,
        });
    }
    Some(CpuCost {
        server_us_per_req,
        parts,
    })
}

/// Runs everything asked for; Ok(false) when a figure could not be measured cleanly.
pub fn run(opts: &Options) -> Result<bool, String> {
    let bins = Bins::prepare(opts.no_build)?;
    let mut run = Run {
        opts,
        bins,
        figures: Vec::new(),
        problems: Vec::new(),
        missing: Vec::new(),
    };
    let load_at_start = load_average();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    for group in ["sizes", "raw", "keyd", "start", "workload", "rsa"] {
        if !opts.wants(group) {
            continue;
        }
        eprintln!("== {group}");
        let result = match group {
            "sizes" => {
                run.sizes();
                Ok(())
            }
            "raw" => {
                run.raw();
                run.echo(&rt)
            }
            "keyd" => run.keyd(&rt),
            "start" => run.start(),
            "workload" => run.daemon(),
            _ => run.rsa(),
        };
        if let Err(e) = result {
            eprintln!("   failed: {e}");
            run.problems.push(format!("{group}: {e}"));
        }
    }
    let report = Report {
        date_utc: sys::utc_now(),
        machine: Machine::here(),
        load_average: [load_at_start, load_average()],
        settings: Settings {
            smoke: opts.smoke,
            build_profile: PROFILE.into(),
            warmup_s: opts.warmup.as_secs_f64(),
            duration_s: opts.duration.as_secs_f64(),
            start_runs: opts.start_runs,
        },
        targets_missed: run
            .figures
            .iter()
            .filter(|f| f.met == Some(false))
            .map(|f| f.name.clone())
            .collect(),
        problems: run.problems.clone(),
        missing_binaries: run.missing.clone(),
        figures: run.figures,
    };
    println!(
        "\nedgesec benchmark, {} ({} build), {} x {}, kernel {}, load average {:.2} -> {:.2}\n",
        report.date_utc,
        PROFILE,
        report.machine.nproc,
        report.machine.cpu_model,
        report.machine.kernel,
        report.load_average[0],
        report.load_average[1],
    );
    println!("{}", table(&report.figures));
    if !report.targets_missed.is_empty() {
        println!("targets missed: {}", report.targets_missed.join("; "));
    }
    for m in &report.missing_binaries {
        println!("missing binary (not measured): {m}");
    }
    for p in &report.problems {
        println!("PROBLEM: {p}");
    }
    if let Some(out) = &opts.out {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(out, json).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("report written to {}", out.display());
    }
    Ok(report.problems.is_empty())
}
