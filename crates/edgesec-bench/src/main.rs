//! `edgesec-bench`: starts the real `edgesecd` and `edgesec-keyd` on temporary directories and
//! measures them against DESIGN.md's performance budget, each figure next to the raw crypto
//! limit measured in the same run.
//!
//! ```text
//! cargo run --release -p edgesec-bench -- --out report.json
//! cargo run -p edgesec-bench -- --smoke --out target/bench-smoke.json   # a few seconds, CI
//! ```
//!
//! The workload figures come from worker modules: this same binary, deployed by the real
//! edgesec-agent as process modules of edgesecd and attested like any module, in `worker` mode.

mod client;
mod daemon;
mod echo;
mod edge;
mod hist;
mod keyd;
mod local;
mod raw;
mod report;
mod run;
mod sys;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "edgesec-bench",
    about = "Benchmarks the real edgesecd and edgesec-keyd against the performance budget"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Write the report as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measured seconds per figure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before each load figure.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs whose median is a start-time figure.
    #[arg(long, default_value_t = 5)]
    start_runs: usize,
    /// A quick run for CI: 0.5 s per figure, 0.2 s warm-up, one start run.
    #[arg(long)]
    smoke: bool,
    /// Do not build the binaries under test first (they must be next to this one).
    #[arg(long)]
    no_build: bool,
    /// Only these groups (comma-separated): sizes, raw, keyd, start, workload, rsa.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Subcommand)]
enum Mode {
    /// Run as a worker module (edgesecd starts it; not for direct use).
    #[command(hide = true)]
    Worker {
        /// The directory the orchestrator leaves jobs in.
        #[arg(long = "box")]
        box_dir: PathBuf,
    },
    /// Serve an empty handler on a socket (the transport floor; not for direct use).
    #[command(hide = true)]
    Echo {
        #[arg(long)]
        socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Mode::Worker { box_dir }) = &cli.mode {
        return match worker::main(box_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgesec-bench worker: {e}");
                let _ = std::fs::write(box_dir.join("error"), &e);
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Mode::Echo { socket }) = &cli.mode {
        return match echo::main(socket) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgesec-bench echo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let opts = if cli.smoke {
        run::Options {
            out: cli.out,
            warmup: secs(0.2),
            duration: secs(0.5),
            start_runs: 1,
            smoke: true,
            no_build: cli.no_build,
            only: cli.only,
        }
    } else {
        run::Options {
            out: cli.out,
            warmup: secs(cli.warmup),
            duration: secs(cli.duration.max(0.1)),
            start_runs: cli.start_runs.max(1),
            smoke: false,
            no_build: cli.no_build,
            only: cli.only,
        }
    };
    match run::run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("edgesec-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
