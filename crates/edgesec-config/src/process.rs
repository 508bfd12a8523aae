//! What every edgesec binary does first: set up logging the same way.

use std::io::IsTerminal;

/// Logs to stderr, filtered by `EDGESEC_LOG` (default `info`), in colour only on a terminal
/// and never when `NO_COLOR` is set. `targets` shows the module path of each event.
pub fn init_logging(targets: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // `Targets` takes the usual `level` or `target=level,...` directives without a regex
    // engine, which keeps every binary smaller and quicker to start.
    let (filter, bad) = log_filter(std::env::var("EDGESEC_LOG").ok().as_deref());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour)
                .with_target(targets),
        )
        .with(filter)
        .init();
    if let Some(why) = bad {
        tracing::warn!("EDGESEC_LOG ignored ({why}); logging at info");
    }
}

/// The filter for `EDGESEC_LOG`: `info` when unset, and when unparsable (with the reason).
fn log_filter(directives: Option<&str>) -> (tracing_subscriber::filter::Targets, Option<String>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let info = || Targets::new().with_default(LevelFilter::INFO);
    match directives.map(str::trim) {
        None | Some("") => (info(), None),
        Some(d) => match d.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (info(), Some(e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn edgesec_log_directives() {
        let (t, bad) = log_filter(None);
        assert!(
            bad.is_none()
                && t.would_enable("x", &Level::INFO)
                && !t.would_enable("x", &Level::DEBUG)
        );
        let (t, bad) = log_filter(Some("warn,edgesecd=debug"));
        assert!(bad.is_none());
        assert!(t.would_enable("edgesecd::workload", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        let (t, bad) = log_filter(Some("edgesecd=loud"));
        assert!(bad.is_some() && t.would_enable("x", &Level::INFO));
    }
}
