//! `edgesecd --config FILE`.
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 78 for a bad config (the message names the file, the key
//! and what is wrong), 1 when the daemon cannot start (keyd unreachable, unsafe state dir, ...).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edgesecd::config::Config;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "edgesecd", version, about = "edgesec security daemon")]
struct Args {
    /// Path of config.toml.
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    edgesec_config::init_logging(true);
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgesecd: bad config: {e}");
            return ExitCode::from(edgesec_config::EXIT_CONFIG as u8);
        }
    };
    // One async worker thread unless TOKIO_WORKER_THREADS says otherwise: the requests are
    // short and the slow work (hashing, key generation) runs on the blocking pool anyway, and on
    // a 2-core device a second worker cost more in cross-thread wake-ups than it gained (see
    // the benchmark section of the README).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgesecd: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgesecd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let running = edgesecd::bootstrap::boot(config).await?;
    edgesecd::notify::notify("READY=1\nSTATUS=edgesecd is running\n");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "edgesecd ready");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    edgesecd::notify::notify("STOPPING=1\n");
    running.shutdown().await;
    tracing::info!("edgesecd stopped");
    Ok(())
}
