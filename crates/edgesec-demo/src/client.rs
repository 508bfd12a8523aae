//! `edgesec-demo client`: fetches an identity certificate and the trust bundle, then pings the
//! server over mutual TLS every `--every`, retrying failures with a doubling wait.

use std::time::{Duration, Instant, SystemTime};

use crate::certs::{self, Credentials, TrustBundle, rfc3339};
use crate::cli::{ClientArgs, ModuleEnv};
use crate::tls;
use crate::workload::Workload;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One attempt's failure, and whether the credentials should be fetched again for the next.
struct Failed {
    message: String,
    refetch: bool,
}

struct Client {
    args: ClientArgs,
    id: String,
    workload: Workload,
    creds: Option<Credentials>,
}

impl Client {
    async fn credentials(&mut self) -> Result<&Credentials, String> {
        let stale = self
            .creds
            .as_ref()
            .is_none_or(|c| SystemTime::now() >= c.leaf.renew_at());
        if stale {
            let response = self.workload.identity_cert().await?;
            let creds = Credentials::from_response("the identity certificate", &response)?;
            tracing::info!(
                "{}: got identity certificate {} ({}) valid until {}",
                self.id,
                creds.leaf.subject,
                creds.leaf.identity(),
                rfc3339(creds.leaf.not_after)
            );
            if let Some(dir) = &self.args.dump_dir {
                let bundle = self.workload.trust_bundle().await?;
                certs::dump(dir, "identity", &response.certificate, &bundle)?;
            }
            self.creds = Some(creds);
        }
        Ok(self.creds.as_ref().expect("just set"))
    }

    /// One exchange; on success, the line to log.
    async fn attempt(&mut self) -> Result<String, Failed> {
        let fetch_failed = |message| Failed {
            message,
            refetch: true,
        };
        let bundle = TrustBundle::parse(&self.workload.trust_bundle().await.map_err(fetch_failed)?)
            .map_err(fetch_failed)?;
        let creds = self.credentials().await.map_err(fetch_failed)?;
        let own_identity = creds.leaf.identity().to_owned();
        let connector = tls::connector(creds, &bundle).map_err(fetch_failed)?;
        let (addr, server_name) = (&self.args.connect, &self.args.server_name);
        let line = format!("ping from {} at {}", self.id, rfc3339(SystemTime::now()));
        let pinged = tls::ping(&connector, addr, server_name, &line)
            .await
            .map_err(|e| Failed {
                refetch: e.refetch_identity(),
                message: e.to_string(),
            })?;
        let seen =
            tls::check_reply(&pinged.reply, &line, &own_identity).map_err(|message| Failed {
                message,
                refetch: false,
            })?;
        let names = pinged
            .peer_chain
            .first()
            .and_then(|c| certs::CertInfo::parse(c).ok())
            .map(|c| c.names.join(", "))
            .unwrap_or_default();
        Ok(format!(
            "{}: mutual TLS with {addr} OK: server name {server_name} verified (server certificate names: {names}), \
             peer chain {}, {}, server saw client identity {seen}; reply: {:?}",
            self.id,
            bundle.describe_chain(&pinged.peer_chain),
            pinged.cipher,
            pinged.reply
        ))
    }
}

pub async fn run(
    args: ClientArgs,
    env: ModuleEnv,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let started = Instant::now();
    let (every, once, timeout) = (args.every, args.once, args.timeout);
    let mut client = Client {
        id: env.module_id.clone(),
        workload: Workload::new(&env),
        creds: None,
        args,
    };
    let id = client.id.clone();
    let mut retry = FIRST_RETRY;
    let mut failures = 0u32;
    tokio::pin!(shutdown);
    loop {
        let wait = match client.attempt().await {
            Ok(line) => {
                tracing::info!("{line}");
                if once {
                    return Ok(());
                }
                failures = 0;
                retry = FIRST_RETRY;
                every
            }
            Err(f) => {
                failures += 1;
                if f.refetch {
                    client.creds = None;
                }
                if once && started.elapsed() + retry > timeout {
                    return Err(format!(
                        "no successful mutual TLS exchange with {} within {} ({failures} attempts); last error: {}",
                        client.args.connect,
                        humantime::format_duration(timeout),
                        f.message
                    ));
                }
                tracing::warn!(
                    "{id}: attempt {failures} failed: {}; retrying in {}",
                    f.message,
                    humantime::format_duration(retry)
                );
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("{id}: stopping");
    Ok(())
}
