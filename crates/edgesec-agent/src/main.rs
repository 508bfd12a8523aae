//! `edgesec-agent`: reconciles the modules of a deployment file through edgesecd's management
//! API until SIGTERM or SIGINT. See `edgesec-agent --help` and docs/deployment.md.

use std::process::ExitCode;

use clap::Parser;
use edgesec_agent::agent;
use edgesec_agent::cli::Args;
use tokio::signal::unix::{SignalKind, signal};

/// Bad arguments or environment, as for clap's own usage errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    edgesec_config::init_logging(true);
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgesec-agent: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = runtime.map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(async {
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
            let shutdown = async move {
                let which = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!("{which} received; stopping");
            };
            agent::run(config, shutdown).await;
            Ok::<(), String>(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgesec-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
