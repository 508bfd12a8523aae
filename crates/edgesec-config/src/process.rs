//! What every edgesec binary does first: set up logging the same way.

use std::io::IsTerminal;

/// Logs to stderr, filtered by `EDGESEC_LOG` (default `info`), in colour only on a terminal
/// and never when `NO_COLOR` is set. `targets` shows the module path of each event.
pub fn init_logging(targets: bool) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDGESEC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(targets)
        .init();
}
