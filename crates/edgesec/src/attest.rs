//! `edgesec attest`: fetch a TPM quote from edgesecd (admins only) and verify one offline.
//!
//! - `edgesec attest quote [--nonce HEX] [-o q.json]`: `GET /attestation/quote?nonce=HEX`;
//!   without `--nonce` a random one is made and printed to stderr.
//! - `edgesec attest verify --quote q.json --policy allowed.json --nonce HEX [--ak ak.pem]`:
//!   the AK signature, the nonce, the quoted PCR digest, the event log replayed to it, and each
//!   event against the policy; one verdict per check and per event. Exit 0 only when trusted.
//! - `edgesec attest policy --quote q.json`: a policy allowing exactly what a golden device's
//!   quote holds, to review and keep.

use std::path::PathBuf;

use clap::Subcommand;
use edgesec_integrity::Evidence;
use edgesec_integrity::verify::{Policy, verify};

use crate::ctx::Ctx;
use crate::error::{CliError, Result};

#[derive(Subcommand)]
pub enum AttestCommand {
    /// Fetch a TPM quote of keyd's measurements, with the event log (admins only).
    Quote {
        /// The verifier's nonce in hex (1 to 64 bytes); default: 32 random bytes.
        #[arg(long)]
        nonce: Option<String>,
        /// Where to write the quote (JSON); default stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify a quote offline against a nonce and a policy of allowed digests.
    Verify {
        #[arg(long)]
        quote: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// The nonce the quote was asked with (hex).
        #[arg(long)]
        nonce: String,
        /// The attestation key expected (PEM); without it any AK is accepted.
        #[arg(long)]
        ak: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print a policy allowing every measurement a (golden) quote's log holds.
    Policy {
        #[arg(long)]
        quote: PathBuf,
    },
}

fn read(path: &std::path::Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            format!("cannot read {}: {e}", path.display()),
            format!("give the {what} file"),
        )
    })
}

fn evidence(path: &std::path::Path) -> Result<Evidence> {
    serde_json::from_str(&read(path, "quote")?).map_err(|e| {
        CliError::new(
            format!("{} is not a quote: {e}", path.display()),
            "fetch one with `edgesec attest quote -o q.json`",
        )
    })
}

pub async fn run(ctx: &Ctx, cmd: AttestCommand) -> Result<()> {
    match cmd {
        AttestCommand::Quote { nonce, output } => {
            let nonce = match nonce {
                Some(n) => n,
                None => {
                    let mut b = [0u8; 32];
                    aws_lc_rs::rand::fill(&mut b)
                        .map_err(|_| CliError::new("no randomness", "retry"))?;
                    let n = edgesec_integrity::hex(&b);
                    eprintln!("nonce: {n}");
                    n
                }
            };
            let socket = ctx.mgmt_socket()?;
            let client = edgesec_http::UdsClient::new(&socket);
            let path = format!("/attestation/quote?api-version=2022-08-03&nonce={nonce}");
            let q: serde_json::Value = client
                .get_json(&path)
                .await
                .map_err(|e| CliError::mgmt(e, &socket))?;
            let text = serde_json::to_string_pretty(&q).expect("serializable") + "\n";
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| {
                    CliError::new(
                        format!("cannot write {}: {e}", p.display()),
                        "choose another path",
                    )
                })?,
                None => print!("{text}"),
            }
        }
        AttestCommand::Verify {
            quote,
            policy,
            nonce,
            ak,
            json,
        } => {
            let e = evidence(&quote)?;
            let p: Policy = serde_json::from_str(&read(&policy, "policy")?).map_err(|err| {
                CliError::new(
                    format!("{} is not a policy: {err}", policy.display()),
                    "a policy is {\"allow\": [{\"measurement\": \"sha256:…\", \"kind\": \"…\"}]}; \
                     `edgesec attest policy --quote golden.json` writes one",
                )
            })?;
            let n = edgesec_integrity::from_hex(&nonce).ok_or_else(|| {
                CliError::new(
                    "--nonce is not hex",
                    "give the nonce the quote was asked with",
                )
            })?;
            let ak = ak.map(|a| read(&a, "AK")).transpose()?;
            let report = verify(&e, &n, &p, ak.as_deref());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serializable")
                );
            } else {
                print!("{}", report.render());
            }
            if !report.trusted {
                return Err(CliError::new(
                    format!("the quote is NOT trusted: {}", report.failures().join("; ")),
                    "each FAIL line above names what failed",
                ));
            }
        }
        AttestCommand::Policy { quote } => {
            let p = Policy::from_evidence(&evidence(&quote)?);
            println!(
                "{}",
                serde_json::to_string_pretty(&p).expect("serializable")
            );
        }
    }
    Ok(())
}
