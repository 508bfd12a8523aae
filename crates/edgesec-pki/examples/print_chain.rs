//! Issues a server certificate for `$edgeHub` from a quickstart CA with keys in a fresh software
//! key store, writes `leaf.pem`, `chain.pem` and `bundle.pem`, and checks them with
//!
//! ```text
//! openssl verify -CAfile bundle.pem -untrusted chain.pem leaf.pem
//! ```
//!
//! Usage: `cargo run -p edgesec-pki --example print_chain [-- OUT_DIR [HOSTNAME]]`.
//! Without OUT_DIR a new directory under the system temp dir is used and kept.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use edgesec_keys::soft::SoftKeyStore;
use edgesec_pki::{CertAuthority, PkiConfig, SystemClock};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("edgesec-print-chain-{}", std::process::id())),
    };
    let hostname = args.next().unwrap_or_else(|| "edge-gateway.local".into());
    std::fs::create_dir_all(&out)?;

    let store = Arc::new(SoftKeyStore::open(&out.join("keys"))?);
    let ca = CertAuthority::open(
        &PkiConfig::default(),
        store,
        Arc::new(SystemClock),
        &out.join("state"),
    )?;
    let issued = ca.issue_server_cert("$edgeHub", &hostname)?;

    // Split the response into the leaf and the intermediates, as a TLS server would send them.
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.certificate_pem.as_bytes())
            .collect::<Result<_, _>>()?;
    let pem = |c: &CertificateDer<'_>| edgesec_keys::pem_encode("CERTIFICATE", c);
    let leaf = out.join("leaf.pem");
    let chain = out.join("chain.pem");
    let bundle = out.join("bundle.pem");
    std::fs::write(&leaf, pem(&certs[0]))?;
    std::fs::write(&chain, certs[1..].iter().map(pem).collect::<String>())?;
    std::fs::write(&bundle, ca.trust_bundle_pem()?)?;

    println!(
        "server certificate for $edgeHub ({hostname}), expires {}",
        issued.expiration_rfc3339()
    );
    println!("  leaf:   {}", leaf.display());
    println!(
        "  chain:  {} ({} intermediate)",
        chain.display(),
        certs.len() - 1
    );
    println!("  bundle: {}", bundle.display());
    println!();
    print!("{}", issued.certificate_pem);
    println!();

    let args = [
        "verify".as_ref(),
        "-CAfile".as_ref(),
        bundle.as_os_str(),
        "-untrusted".as_ref(),
        chain.as_os_str(),
        leaf.as_os_str(),
    ];
    println!(
        "$ openssl {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    match Command::new("openssl").args(args).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("openssl verify failed: {status}").into()),
        Err(e) => {
            eprintln!("openssl is not installed ({e}); run the command above where it is");
            Ok(())
        }
    }
}
