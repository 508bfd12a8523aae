//! The figures of a running edgesecd: workload sign, trust bundle and certificates from worker
//! modules, and the daemon's memory.

use std::path::PathBuf;
use std::time::Duration;

use crate::echo::Echo;
use crate::edge::Edge;
use crate::report::{Figure, Target};
use crate::run::{
    CERT_CLIENTS, CLIENTS_PER_WORKER, Loaded, Run, SIGN_CLIENTS, TRUST_BUNDLE_CLIENTS, WORKERS,
    cpu_cost,
};
use crate::sys;
use crate::worker::{Job, JobKind, instant_of, unix_ms_now};

impl Run<'_> {
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

    pub(crate) fn daemon(&mut self) -> Result<(), String> {
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

    pub(crate) fn rsa(&mut self) -> Result<(), String> {
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
