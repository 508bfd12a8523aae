//! `edgesec-keyd --config FILE`: serves the key store on a Unix socket until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use edgesec_http::{ServerLimits, bind_unix_socket, serve};
use edgesec_keyd::KeyService;
use edgesec_keyd::config::Config;
use tokio::signal::unix::{SignalKind, signal};

/// Mode of the key service socket: the daemon's user and group only.
const SOCKET_MODE: u32 = 0o660;

#[derive(Parser)]
#[command(
    name = "edgesec-keyd",
    version,
    about = "edgesec key service: keeps the device's keys and uses them for its callers"
)]
struct Args {
    /// Path of keyd.toml.
    #[arg(long, short)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Seal the store's master key again to this binary and config (after a legitimate update;
    /// root or keyd's user, keyd stopped).
    Reseal {
        /// Accept the current keyd binary and config as trusted.
        #[arg(long)]
        confirm: bool,
    },
}

fn main() -> ExitCode {
    if std::env::var_os("TSS2_LOG").is_none() {
        // libtss2 prints its own ERROR lines for answers keyd expects (a persistent key not
        // there yet on first start) and handles; keyd reports TPM errors itself, in words.
        // SAFETY: nothing else runs yet: no thread has been started that could read the
        // environment concurrently.
        unsafe { std::env::set_var("TSS2_LOG", "all+none") };
    }
    let args = Args::parse();
    edgesec_config::init_logging(true);
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgesec-keyd: bad config: {e}");
            return ExitCode::from(edgesec_config::EXIT_CONFIG as u8);
        }
    };
    if let Some(Command::Reseal { confirm }) = args.command {
        return match edgesec_keyd::sealing::reseal(&config, confirm) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edgesec-keyd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(config)))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgesec-keyd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let (store, measurements) = edgesec_keyd::startup::open(&config)?;
    let mut service = KeyService::new(store, config.principals.clone())
        .map_err(|e| format!("cannot start: {e}"))?
        .with_measurements(measurements);
    if config.store.seal_master_key {
        service = service.with_sealed_master_key();
    }
    let listener = bind_unix_socket(&config.socket, SOCKET_MODE, config.socket_group)
        .map_err(|e| format!("cannot listen on {}: {e}", config.socket.display()))?;
    let limits = ServerLimits {
        max_body_bytes: config.limits.max_body_bytes,
        max_connections_per_uid: config.limits.max_connections_per_uid,
        request_timeout: config.request_timeout(),
        ..ServerLimits::default()
    };
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tracing::info!(socket = %config.socket.display(), state = %config.state_dir.display(), store = %config.store.describe(), "edgesec-keyd ready");
    serve(listener, limits, Arc::new(service), async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("edgesec-keyd stopped");
    Ok(())
}
