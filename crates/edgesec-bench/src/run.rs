//! The orchestrator: every figure in order, each next to its target and raw limit.

use std::path::PathBuf;
use std::time::Duration;

use crate::echo::Echo;
use crate::edge::Edge;
use crate::hist::Histogram;
use crate::keyd::{self, Keyd};
use crate::raw::{self, RawOp};
use crate::report::{CpuCost, CpuPart, Figure, Latency, Machine, Report, Settings, Target, table};
use crate::sys::{self, Bins, PROFILE, SIZED};
use crate::worker::{Job, JobKind, JobResult, instant_of, unix_ms_now};

/// Worker module processes per daemon. A load of N clients runs on ceil(N / 4) of them, at
/// most all: 1 = 1 x 1, 16 = 4 x 4, 64 = 8 x 8 (under the workload socket's default limit of
/// 10 connections per uid and socket).
const WORKERS: usize = 8;
const CLIENTS_PER_WORKER: usize = 4;
const KEYD_CLIENTS: usize = 8;
const SIGN_CLIENTS: [usize; 3] = [1, 16, 64];
const TRUST_BUNDLE_CLIENTS: usize = 16;
const CERT_CLIENTS: usize = 8;

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

struct Run<'a> {
    opts: &'a Options,
    bins: Bins,
    figures: Vec<Figure>,
    problems: Vec<String>,
    /// Binaries that were not there to be measured.
    missing: Vec<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Run<'_> {
    fn push(&mut self, f: Figure) {
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

    fn find(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.id == id)
    }

    /// A throughput figure from merged results.
    fn load_figure(&self, id: &str, name: &str, unit: &str, clients: usize, r: Loaded) -> Figure {
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

    fn sizes(&mut self) {
        for (name, budget) in SIZED {
            match self.bins.size(name) {
                Some(bytes) => {
                    let mut f = Figure::new(
                        &format!("size.{name}"),
                        &format!("binary size {name}"),
                        bytes as f64 / MIB,
                        "MiB",
                    )
                    .note(format!("{bytes} bytes, {PROFILE} build"));
                    if PROFILE == "release" {
                        f = f.target(Target::at_most(budget, &format!("≤ {budget} MiB")));
                    }
                    self.push(f);
                }
                None => self
                    .missing
                    .push(format!("{}", self.bins.path(name).display())),
            }
        }
    }

    fn raw(&mut self) {
        let d = self.opts.duration;
        for (op, threads) in [
            (RawOp::Hmac, 1),
            (RawOp::Hmac, 2),
            (RawOp::P256Sign, 1),
            (RawOp::P256Sign, 2),
            (RawOp::CertP256, 2),
            (RawOp::CertRsa2048, 2),
        ] {
            let v = raw::measure(op, threads, d);
            self.push(Figure::new(
                &format!("raw.{}.{threads}t", op.id()),
                &format!("raw limit: {}, {threads} thread(s)", op.label()),
                v,
                "op/s",
            ));
        }
    }

    /// The transport floor: an empty handler behind edgesec's HTTP server.
    fn echo(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        let echo = Echo::start()?;
        let (w, d) = (self.opts.warmup, self.opts.duration);
        for clients in [KEYD_CLIENTS, 16] {
            let start = std::time::Instant::now() + Duration::from_millis(100);
            let procs = [
                ("echo server".to_owned(), Some(echo.pid())),
                (
                    "client (this process)".to_owned(),
                    Some(std::process::id() as i32),
                ),
            ];
            let pids = vec![echo.pid(), std::process::id() as i32];
            let sampler = sys::cpu_sampler(pids, start + w, start + w + d);
            let r = rt.block_on(echo.load(clients, start, w, d));
            let cpu = sampler.join().unwrap_or_default();
            let loaded = Loaded {
                cpu: cpu_cost(&procs, &cpu, r.ok, d, 1),
                ok: r.ok,
                errors: r.errors,
                first_error: r.first_error,
                hist: r.hist,
            };
            let f = self
                .load_figure(
                    &format!("raw.http_echo.{clients}"),
                    &format!("raw limit: HTTP round trip, empty handler, {clients} clients"),
                    "req/s",
                    clients,
                    loaded,
                )
                .note("edgesec-http server on a multi-thread runtime in its own process; the cost of one hop over a Unix socket");
            self.push(f);
        }
        Ok(())
    }

    fn keyd(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        let mut k = Keyd::new(&self.bins)?;
        let (cold, warm) = keyd::start_times(&mut k, self.opts.start_runs)?;
        let runs = self.opts.start_runs;
        let t = || Target::at_most(5.0, "≤ 5 ms");
        self.push(
            Figure::new(
                "keyd.start.cold",
                "keyd start to ready, new store",
                cold,
                "ms",
            )
            .target(t())
            .note(format!("median of {runs}; spawn to socket accepting")),
        );
        self.push(
            Figure::new(
                "keyd.start.warm",
                "keyd start to ready, existing store",
                warm,
                "ms",
            )
            .target(t())
            .note(format!("median of {runs}; spawn to socket accepting")),
        );
        k.start()?;
        std::thread::sleep(Duration::from_millis(300));
        let pid = k.pid().ok_or("keyd is not running")?;
        if let Some((rss, _)) = sys::memory_kib(pid) {
            self.push(
                Figure::new(
                    "keyd.rss.idle",
                    "keyd alone RSS, idle",
                    rss as f64 / 1024.0,
                    "MiB",
                )
                .target(Target::at_most(6.0, "≤ 6 MiB")),
            );
        }
        let (hmac, p256) = rt.block_on(keyd::sign_requests(k.socket()))?;
        let (w, d) = (self.opts.warmup, self.opts.duration);
        for (id, name, req, target, limit) in [
            (
                "keyd.hmac.8",
                "keyd HMAC-SHA256 sign",
                hmac,
                Target::at_least(40_000.0, "≥ 40,000/s, p99 ≤ 1 ms").with_p99(1.0),
                "raw.hmac.2t",
            ),
            (
                "keyd.p256.8",
                "keyd ECDSA P-256 sign",
                p256,
                Target::at_least(20_000.0, "≥ 20,000/s, p99 ≤ 2 ms").with_p99(2.0),
                "raw.p256_sign.2t",
            ),
        ] {
            let start = std::time::Instant::now() + Duration::from_millis(100);
            let procs = [
                ("keyd".to_owned(), Some(pid)),
                (
                    "client (this process)".to_owned(),
                    Some(std::process::id() as i32),
                ),
            ];
            let sampler =
                sys::cpu_sampler(vec![pid, procs[1].1.unwrap_or(0)], start + w, start + w + d);
            let r = rt.block_on(keyd::load(k.socket(), req, KEYD_CLIENTS, start, w, d));
            let cpu = sampler.join().unwrap_or_default();
            let loaded = Loaded {
                cpu: cpu_cost(&procs, &cpu, r.ok, d, 1),
                ok: r.ok,
                errors: r.errors,
                first_error: r.first_error,
                hist: r.hist,
            };
            let name = format!("{name}, {KEYD_CLIENTS} clients");
            let f = self
                .load_figure(id, &name, "req/s", KEYD_CLIENTS, loaded)
                .target(target);
            let f = f.limit(self.find(limit));
            self.push(f);
        }
        if let Some((_, hwm)) = sys::memory_kib(pid) {
            self.push(Figure::new(
                "keyd.rss.peak",
                "keyd alone RSS, peak after load",
                hwm as f64 / 1024.0,
                "MiB",
            ));
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), String> {
        let (mut cold, mut warm, mut cold_ready, mut warm_ready) = (vec![], vec![], vec![], vec![]);
        for _ in 0..self.opts.start_runs {
            let mut e = Edge::new(&self.bins, "", 0)?;
            let c = e.start()?;
            e.stop();
            let w = e.start()?;
            e.stop();
            cold.push(c.socket.as_secs_f64() * 1e3);
            warm.push(w.socket.as_secs_f64() * 1e3);
            cold_ready.extend(c.ready.map(|r| r.as_secs_f64() * 1e3));
            warm_ready.extend(w.ready.map(|r| r.as_secs_f64() * 1e3));
        }
        let runs = self.opts.start_runs;
        for (id, name, v, what) in [
            (
                "edgesecd.start.cold",
                "edgesecd start, new state",
                cold,
                "management socket accepting",
            ),
            (
                "edgesecd.start.warm",
                "edgesecd start, existing state",
                warm,
                "management socket accepting",
            ),
            (
                "edgesecd.ready.cold",
                "edgesecd start to READY=1, new state",
                cold_ready,
                "READY=1 (boot done, agent started)",
            ),
            (
                "edgesecd.ready.warm",
                "edgesecd start to READY=1, existing state",
                warm_ready,
                "READY=1 (boot done, agent started)",
            ),
        ] {
            if v.is_empty() {
                self.problems.push(format!("{name}: no READY=1 arrived"));
                continue;
            }
            self.push(
                Figure::new(id, name, sys::median(v), "ms")
                    .target(Target::at_most(100.0, "≤ 100 ms"))
                    .note(format!(
                        "median of {runs}; spawn to {what}; includes starting keyd"
                    )),
            );
        }
        Ok(())
    }

    /// Runs one load on the workers of `edge`: `clients` connections spread over them.
    fn workload(&self, edge: &mut Edge, kind: JobKind, clients: usize) -> Result<Loaded, String> {
        self.workload_on(edge, kind, clients, None)
    }

    /// As [`Run::workload`], with the workers calling `socket` instead of their own.
    fn workload_on(
        &self,
        edge: &mut Edge,
        kind: JobKind,
        clients: usize,
        socket: Option<(PathBuf, i32)>,
    ) -> Result<Loaded, String> {
        let workers = clients
            .div_ceil(CLIENTS_PER_WORKER)
            .clamp(1, edge.workers.len());
        let start_at_ms = unix_ms_now() + 300;
        let (warmup, duration) = (self.opts.warmup, self.opts.duration);
        let jobs: Vec<Job> = (0..workers)
            .map(|i| Job {
                kind,
                connections: clients / workers + usize::from(i < clients % workers),
                start_at_ms,
                warmup_ms: warmup.as_millis() as u64,
                duration_ms: duration.as_millis() as u64,
                socket: socket.as_ref().map(|s| s.0.clone()),
            })
            .collect();
        let measure_from = instant_of(start_at_ms) + warmup;
        let end = measure_from + duration;
        let mut procs = match &socket {
            Some((_, pid)) => vec![("echo server".to_owned(), Some(*pid))],
            None => vec![
                ("edgesecd".to_owned(), edge.pid()),
                ("keyd".to_owned(), edge.keyd_pid()),
            ],
        };
        let servers = procs.len();
        for w in &edge.workers[..workers] {
            procs.push((format!("client {w}"), edge.worker_pid(w)));
        }
        let sampler = sys::cpu_sampler(
            procs.iter().map(|p| p.1.unwrap_or(0)).collect(),
            measure_from,
            end,
        );
        let seq = edge.give_jobs(&jobs)?;
        let results = edge.collect(seq, end + Duration::from_secs(60))?;
        let cpu = sampler.join().unwrap_or_default();
        let mut loaded = Loaded::merge(results);
        loaded.cpu = cpu_cost(&procs, &cpu, loaded.ok, duration, servers);
        Ok(loaded)
    }

    fn daemon(&mut self) -> Result<(), String> {
        let mut edge = Edge::new(&self.bins, "", WORKERS)?;
        edge.start()?;
        edge.wait_workers()?;
        std::thread::sleep(Duration::from_millis(500));
        let pid = edge.pid().ok_or("edgesecd is not running")?;
        let keyd_pid = edge.keyd_pid().ok_or("edgesecd's keyd not found")?;
        let idle = (sys::memory_kib(pid), sys::memory_kib(keyd_pid));
        if let (Some((d, _)), Some((k, _))) = idle {
            let (d, k) = (d as f64 / 1024.0, k as f64 / 1024.0);
            self.push(Figure::new(
                "edgesecd.rss.idle",
                "edgesecd RSS, idle",
                d,
                "MiB",
            ));
            self.push(
                Figure::new(
                    "edgesecd.keyd.rss.idle",
                    "keyd (under edgesecd) RSS, idle",
                    k,
                    "MiB",
                )
                .target(Target::at_most(6.0, "≤ 6 MiB")),
            );
            self.push(
                Figure::new(
                    "edgesecd+keyd.rss.idle",
                    "edgesecd + keyd RSS, idle",
                    d + k,
                    "MiB",
                )
                .target(Target::at_most(16.0, "≤ 16 MiB"))
                .note(format!(
                    "with {WORKERS} worker modules and the agent registered"
                )),
            );
        }
        for clients in SIGN_CLIENTS {
            let r = self.workload(&mut edge, JobKind::Sign, clients)?;
            let mut f = self
                .load_figure(
                    &format!("workload.sign.{clients}"),
                    &format!("workload sign, {clients} client(s)"),
                    "req/s",
                    clients,
                    r,
                )
                .limit(self.find("raw.hmac.2t"))
                .note("module socket; attestation + keyd HMAC per request");
            if clients == 16 {
                f = f.target(Target::at_least(20_000.0, "≥ 20,000/s, p99 ≤ 2 ms").with_p99(2.0));
            }
            self.push(f);
        }
        let echo = Echo::start()?;
        let r = self.workload_on(
            &mut edge,
            JobKind::Echo,
            16,
            Some((echo.socket.clone(), echo.pid())),
        )?;
        drop(echo);
        let f = self
            .load_figure(
                "workload.echo.16",
                "transport floor from module processes: empty handler, 16 clients",
                "req/s",
                16,
                r,
            )
            .note("the workers' own layout (8 processes) against an empty edgesec-http handler: one hop, no attestation, no keyd");
        self.push(f);
        let r = self.workload(&mut edge, JobKind::TrustBundle, TRUST_BUNDLE_CLIENTS)?;
        let f = self.load_figure(
            "workload.trust_bundle.16",
            &format!("workload trust-bundle, {TRUST_BUNDLE_CLIENTS} clients"),
            "req/s",
            TRUST_BUNDLE_CLIENTS,
            r,
        );
        self.push(f);
        let r = self.workload(&mut edge, JobKind::ServerCert, CERT_CLIENTS)?;
        let f = self
            .load_figure(
                "certs.server.p256",
                &format!("server certificate P-256, {CERT_CLIENTS} clients"),
                "cert/s",
                CERT_CLIENTS,
                r,
            )
            .target(Target::at_least(2_000.0, "≥ 2,000/s"))
            .limit(self.find("raw.cert_p256.2t"));
        self.push(f);
        if let (Some((rss, hwm)), Some((krss, khwm))) =
            (sys::memory_kib(pid), sys::memory_kib(keyd_pid))
        {
            let mib = |kib: u64| kib as f64 / 1024.0;
            self.push(Figure::new(
                "edgesecd.rss.peak",
                "edgesecd RSS, peak (VmHWM)",
                mib(hwm),
                "MiB",
            ));
            self.push(Figure::new(
                "edgesecd.rss.after",
                "edgesecd RSS, after load",
                mib(rss),
                "MiB",
            ));
            self.push(Figure::new(
                "edgesecd.keyd.rss.peak",
                "keyd (under edgesecd) RSS, peak (VmHWM)",
                mib(khwm),
                "MiB",
            ));
            self.push(Figure::new(
                "edgesecd.keyd.rss.after",
                "keyd (under edgesecd) RSS, after load",
                mib(krss),
                "MiB",
            ));
        }
        edge.stop();
        Ok(())
    }

    fn rsa(&mut self) -> Result<(), String> {
        let mut edge = Edge::new(
            &self.bins,
            "[module_certs]\nkey_algorithm = \"rsa-2048\"\n",
            CERT_CLIENTS,
        )?;
        edge.start()?;
        edge.wait_workers()?;
        let r = self.workload(&mut edge, JobKind::ServerCert, CERT_CLIENTS)?;
        let f = self
            .load_figure(
                "certs.server.rsa2048",
                &format!("server certificate RSA-2048, {CERT_CLIENTS} clients"),
                "cert/s",
                CERT_CLIENTS,
                r,
            )
            .limit(self.find("raw.cert_rsa2048.2t"))
            .note("a second edgesecd with [module_certs] key_algorithm = \"rsa-2048\"");
        self.push(f);
        edge.stop();
        Ok(())
    }
}

/// Merged results of the workers of one load.
struct Loaded {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram,
    cpu: Option<CpuCost>,
}

impl Loaded {
    fn merge(results: Vec<JobResult>) -> Loaded {
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
fn cpu_cost(
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
        "\nedgesec benchmark, {} ({} build), {} x {}, kernel {}\n",
        report.date_utc,
        PROFILE,
        report.machine.nproc,
        report.machine.cpu_model,
        report.machine.kernel
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
