//! The binaries under test, and what /proc says about processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the binaries are: next to this one, built with the same profile.
pub struct Bins {
    pub dir: PathBuf,
}

pub const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// The binaries whose sizes are reported, with their budget in MiB.
pub const SIZED: [(&str, f64); 4] = [
    ("edgesecd", 6.0),
    ("edgesec-keyd", 3.0),
    ("edgesec-agent", 6.0),
    ("edgesec", 6.0),
];

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Bins {
    /// Builds (unless `no_build`) the daemon, keyd, the agent and the CLI with this binary's
    /// profile, so `cargo run -p edgesec-bench` is the one command on a fresh clone.
    pub fn prepare(no_build: bool) -> Result<Bins, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe
            .parent()
            .ok_or("no directory of the executable")?
            .to_owned();
        let bins = Bins { dir };
        if !no_build {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            // The whole workspace, as the README's `cargo build --release` builds it: the same
            // feature set, so after that command this build has nothing left to do.
            let mut build = Command::new(&cargo);
            build
                .current_dir(workspace())
                .args(["build", "--workspace", "--bins"]);
            if PROFILE == "release" {
                build.arg("--release");
            }
            eprintln!("building the workspace's binaries ({PROFILE}) ...");
            let status = build.status().map_err(|e| format!("cargo: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "cargo build failed ({status}); nothing was measured"
                ));
            }
        }
        for name in ["edgesecd", "edgesec-keyd", "edgesec-agent"] {
            if !bins.path(name).is_file() {
                return Err(format!(
                    "{} is missing; build it with `cargo build{} -p {name}` (or drop --no-build)",
                    bins.path(name).display(),
                    if PROFILE == "release" {
                        " --release"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(bins)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The size of a binary in bytes, if it exists.
    pub fn size(&self, name: &str) -> Option<u64> {
        std::fs::metadata(self.path(name)).ok().map(|m| m.len())
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: i32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The children of `parent` whose command name is `comm`.
pub fn children_named(parent: i32, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok());
        if name == comm && ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Waits until `path` accepts a connection (polling every 200 µs), or `child` exits, or the
/// deadline. Returns the time since `since`.
pub fn wait_accepting(
    path: &Path,
    child: &mut std::process::Child,
    since: Instant,
    deadline: Duration,
) -> Result<Duration, String> {
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(since.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "exited before {} accepted: {status}",
                path.display()
            ));
        }
        if since.elapsed() > deadline {
            return Err(format!(
                "{} not accepting after {deadline:?}",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// SIGTERM, then SIGKILL after `grace`; reaps the child.
pub fn terminate(child: &mut std::process::Child, grace: Duration) -> Option<i32> {
    edgesec_testing::terminate(child, grace).and_then(|s| s.code())
}

/// Lets the disk settle before timing warm starts: writes of a previous (cold) start are
/// flushed, so they do not stall the next start.
pub fn settle() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` now.
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // fields after the comm: state(3) ppid(4) ... utime(14) stime(15)
    let mut it = rest.split_whitespace().skip(11);
    let utime: u64 = it.next()?.parse().ok()?;
    let stime: u64 = it.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos((utime + stime) * 1_000_000_000 / tick))
}

/// Samples the CPU time of `pids` at `from` and at `to` (on a thread of its own, so the caller
/// can run the load meanwhile); the join handle answers the CPU time each used in between.
pub fn cpu_sampler(
    pids: Vec<i32>,
    from: Instant,
    to: Instant,
) -> std::thread::JoinHandle<Vec<Option<Duration>>> {
    std::thread::spawn(move || {
        let sleep_until = |t: Instant| {
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
        };
        sleep_until(from);
        let before: Vec<_> = pids.iter().map(|p| cpu_time(*p)).collect();
        sleep_until(to);
        pids.iter()
            .zip(before)
            .map(|(p, b)| Some(cpu_time(*p)?.saturating_sub(b?)))
            .collect()
    })
}
