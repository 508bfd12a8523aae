//! `edgesec-demo`: a demo module for edgesecd. `server` fetches a server certificate from the
//! workload API and answers mutual-TLS clients; `client` fetches an identity certificate and
//! pings the server over mutual TLS. Both trust only the workload API's trust bundle. See
//! `examples/quickstart/deployment.json`.

mod certs;
mod cli;
mod client;
mod server;
mod tls;
#[cfg(test)]
mod tls_tests;
mod workload;

use std::process::ExitCode;

use clap::Parser;
use cli::{Args, Command, ModuleEnv};
use tokio::signal::unix::{SignalKind, signal};

/// A bad environment, as for clap's own usage errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    edgesec_config::init_logging(false);
    let env = match ModuleEnv::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("edgesec-demo: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgesec-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let id = env.module_id.clone();
    let result = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        match args.command {
            Command::Server(a) => server::run(a, env, shutdown).await,
            Command::Client(a) => client::run(a, env, shutdown).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{id}: {e}");
            ExitCode::FAILURE
        }
    }
}
