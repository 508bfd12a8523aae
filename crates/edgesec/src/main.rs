//! `edgesec`: the operator's command-line tool for edgesecd.
//!
//! Exit codes: 0 on success; 1 on a failure (a failed check, an unreachable daemon, ...);
//! 2 for a usage error; 78 for a bad config.

mod attest;
mod bundle;
mod certs;
mod check;
mod configcmd;
mod ctx;
mod error;
mod import;
mod logs;
mod modules;
mod pkifiles;
mod status;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::ctx::{Ctx, DEFAULT_CONFIG};
use crate::error::{CliError, Result};
use crate::ui::Style;

#[derive(Parser)]
#[command(
    name = "edgesec",
    version,
    about = "Manage and inspect the edgesec security daemon"
)]
struct Cli {
    /// The daemon's config (gives the sockets and the state directory).
    #[arg(long, short, global = true, env = "EDGESEC_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The management socket, as unix:///path (default: the config's).
    #[arg(long, short = 'H', global = true, env = "EDGESEC_MGMT_URI")]
    host: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the modules: NAME, STATUS, DESCRIPTION, CONFIG.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print a module's logs.
    Logs {
        module: String,
        /// Lines from the end: a number or `all`.
        #[arg(long, default_value = "all", value_parser = logs::parse_tail)]
        tail: String,
        /// Only lines since: RFC 3339, unix seconds, or a duration ago (`90m`, `1 day`).
        #[arg(long, value_parser = logs::parse_time_arg)]
        since: Option<u64>,
        /// Only lines until: RFC 3339, unix seconds, or a duration ago.
        #[arg(long, value_parser = logs::parse_time_arg)]
        until: Option<u64>,
        /// Keep printing new lines.
        #[arg(long, short)]
        follow: bool,
    },
    /// Restart a module.
    Restart { module: String },
    /// The daemon as a whole.
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Check the installation: config, keyd, key store, CA chain, clock, sockets, agent, disk.
    Check {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Exit non-zero on warnings too.
        #[arg(long)]
        warnings_as_errors: bool,
    },
    /// Certificates kept by edgesec.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Module identities.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Check or convert configs.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Write an archive of logs, check output and the config with secrets redacted.
    SupportBundle {
        /// The archive to write (`-` for stdout); default support_bundle_<time>.tar.gz.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// TPM quotes of the measurement log: fetch one, verify one offline.
    Attest {
        #[command(subcommand)]
        command: attest::AttestCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Version, uptime, key store, device identity and provisioning, CA chain, module counts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Provision the device again (DPS registers anew; a manual device keeps its identity).
    Reprovision,
}

#[derive(Subcommand)]
enum CertCommand {
    /// List the certificates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate: subject, SANs, issuer, validity, key location.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// List the module identities.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config without starting anything.
    Check { file: PathBuf },
    /// Convert an IoT Edge config (/etc/aziot/config.toml) into an edgesec config.
    Import {
        #[arg(default_value = import::DEFAULT_INPUT)]
        aziot_config: PathBuf,
        /// Where to write (`-` for stdout); default: the --config path.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite the output (and replace keys in keyd).
        #[arg(long, short)]
        force: bool,
        /// keyd to put keys into (default: the --config's, else /run/edgesec/keyd.sock).
        #[arg(long)]
        keyd_socket: Option<PathBuf>,
        /// state_dir of the new config.
        #[arg(long, default_value = "/var/lib/edgesec")]
        state_dir: PathBuf,
    },
}

async fn run(cli: Cli, style: Style) -> Result<ExitCode> {
    let ctx = Ctx::new(cli.config, cli.host);
    match cli.command {
        Command::List { json } => modules::list(&ctx, json, style).await?,
        Command::Logs {
            module,
            tail,
            since,
            until,
            follow,
        } => {
            logs::logs(
                &ctx,
                &module,
                logs::LogArgs {
                    tail,
                    since,
                    until,
                    follow,
                },
            )
            .await?
        }
        Command::Restart { module } => modules::restart(&ctx, &module).await?,
        Command::System {
            command: SystemCommand::Status { json },
        } => status::system_status(&ctx, json, style).await?,
        Command::System {
            command: SystemCommand::Reprovision,
        } => status::reprovision(&ctx, style).await?,
        Command::Check {
            output,
            warnings_as_errors,
        } => {
            let failed = check::check(
                &ctx,
                matches!(output, Output::Json),
                warnings_as_errors,
                style,
            )
            .await;
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        Command::Cert {
            command: CertCommand::List { json },
        } => certs::list(&ctx, json, style)?,
        Command::Cert {
            command: CertCommand::Show { id, json },
        } => certs::show(&ctx, &id, json, style)?,
        Command::Identity {
            command: IdentityCommand::List { json },
        } => modules::identities(&ctx, json).await?,
        Command::Config {
            command: ConfigCommand::Check { file },
        } => configcmd::check_file(&file)?,
        Command::Config {
            command:
                ConfigCommand::Import {
                    aziot_config,
                    output,
                    force,
                    keyd_socket,
                    state_dir,
                },
        } => {
            let args = import::ImportArgs {
                input: aziot_config,
                output,
                force,
                keyd_socket,
                state_dir,
            };
            import::import(&ctx, args).await?
        }
        Command::SupportBundle { output } => bundle::support_bundle(&ctx, output).await?,
        Command::Attest { command } => attest::run(&ctx, command).await?,
        Command::Version => println!("edgesec {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`edgesec list | head`), like other command-line tools.
    // SAFETY: setting a signal to its default disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let style = Style::detect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgesec: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, style)) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::from(e.code)
        }
    }
}

fn print_error(e: &CliError) {
    let err_style = {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: tty && !no_color,
            unicode: tty,
        }
    };
    eprintln!("{} {}", err_style.red("error:"), e.message);
    if let Some(h) = &e.hint {
        eprintln!("{} {h}", err_style.bold("hint:"));
    }
}
