//! The figures that need no daemon: binary sizes, raw limits, the transport floor, the key
//! service alone, and start times.

use std::time::Duration;

use crate::echo::Echo;
use crate::edge::Edge;
use crate::keyd::{self, Keyd};
use crate::raw::{self, RawOp};
use crate::report::{Figure, Target};
use crate::run::{KEYD_CLIENTS, Loaded, MIB, Run, cpu_cost};
use crate::sys::{self, PROFILE, SIZED};

impl Run<'_> {
    pub(crate) fn sizes(&mut self) {
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

    pub(crate) fn raw(&mut self) {
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
    pub(crate) fn echo(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
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

    pub(crate) fn keyd(&mut self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
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

    pub(crate) fn start(&mut self) -> Result<(), String> {
        let (mut cold, mut warm, mut cold_ready, mut warm_ready) = (vec![], vec![], vec![], vec![]);
        // Cold: each run on a new state directory. Warm: the last one again, after the disk
        // has settled.
        let mut edge = None;
        for _ in 0..self.opts.start_runs {
            let mut e = Edge::new(&self.bins, "", 0)?;
            let c = e.start()?;
            e.stop();
            cold.push(c.socket.as_secs_f64() * 1e3);
            cold_ready.extend(c.ready.map(|r| r.as_secs_f64() * 1e3));
            edge = Some(e);
        }
        let mut e = edge.ok_or("no start run")?;
        sys::settle();
        for _ in 0..self.opts.start_runs {
            let w = e.start()?;
            e.stop();
            warm.push(w.socket.as_secs_f64() * 1e3);
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
}
