//! The TLS plumbing in-process, with a throwaway CA made by rcgen shaped like edgesecd's
//! (root → edge CA → server and identity leaves).

use edgesec_api::workload::{CertificateResponse, PrivateKey};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio::net::TcpListener;

use crate::certs::{Credentials, TrustBundle, dump, pem_blocks};
use crate::tls::{self, PingError, check_reply};

const CLIENT_URI: &str = "azureiot://localhost/devices/dev1/modules/demo-client";

struct Pki {
    root_pem: String,
    server: CertificateResponse,
    client: CertificateResponse,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn leaf(
    cn: &str,
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
    edge: &CertifiedIssuer<'_, KeyPair>,
) -> CertificateResponse {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &**edge).unwrap();
    CertificateResponse {
        private_key: PrivateKey {
            key_type: "key".into(),
            bytes: key.serialize_pem(),
        },
        certificate: format!("{}{}", cert.pem(), edge.pem()),
        expiration: "unused".into(),
    }
}

fn pki(name: &str) -> Pki {
    let root = CertifiedIssuer::self_signed(
        ca_params(&format!("{name} root CA")),
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let edge = CertifiedIssuer::signed_by(
        ca_params(&format!("{name} edge CA")),
        KeyPair::generate().unwrap(),
        &*root,
    )
    .unwrap();
    let dns = |s: &str| SanType::DnsName(s.try_into().unwrap());
    Pki {
        root_pem: root.pem(),
        server: leaf(
            "localhost",
            vec![dns("localhost"), dns("demo-server")],
            ExtendedKeyUsagePurpose::ServerAuth,
            &edge,
        ),
        client: leaf(
            "demo-client",
            vec![SanType::URI(CLIENT_URI.try_into().unwrap())],
            ExtendedKeyUsagePurpose::ClientAuth,
            &edge,
        ),
    }
}

/// Serves one exchange with `server_pki`'s certificate, trusting `server_pki`'s root, and pings
/// it as `client_pki`'s client trusting `client_pki`'s root.
async fn exchange(
    server_pki: &Pki,
    client_pki: &Pki,
    server_name: &str,
) -> (
    Result<tls::Served, String>,
    Result<tls::Pinged, PingError>,
    TrustBundle,
) {
    let server_creds = Credentials::from_response("server", &server_pki.server).unwrap();
    let server_bundle = TrustBundle::parse(&server_pki.root_pem).unwrap();
    let acceptor = tls::acceptor(&server_creds, &server_bundle).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tls::serve_one(&acceptor, tcp).await
    });
    let client_creds = Credentials::from_response("client", &client_pki.client).unwrap();
    let client_bundle = TrustBundle::parse(&client_pki.root_pem).unwrap();
    let connector = tls::connector(&client_creds, &client_bundle).unwrap();
    let pinged = tls::ping(&connector, &addr, server_name, "ping from demo-client").await;
    (served.await.unwrap(), pinged, client_bundle)
}

#[tokio::test]
async fn mutual_tls_succeeds_and_each_side_sees_the_other() {
    let p = pki("test");
    let (served, pinged, bundle) = exchange(&p, &p, "localhost").await;
    let served = served.unwrap();
    assert_eq!(served.client_identity, CLIENT_URI);
    assert_eq!(served.line, "ping from demo-client");
    let pinged = pinged.unwrap();
    assert_eq!(
        pinged.reply,
        format!("hello {CLIENT_URI}: ping from demo-client")
    );
    assert_eq!(
        check_reply(&pinged.reply, "ping from demo-client", CLIENT_URI).unwrap(),
        CLIENT_URI
    );
    assert_eq!(
        bundle.describe_chain(&pinged.peer_chain),
        "CN=localhost <- CN=test edge CA <- CN=test root CA (trust bundle)"
    );
    assert!(
        pinged.cipher.starts_with("TLSv1_3 TLS13_"),
        "{}",
        pinged.cipher
    );
}

#[tokio::test]
async fn the_other_certificate_name_is_refused_by_the_client() {
    let p = pki("test");
    let (served, pinged, _) = exchange(&p, &p, "other.example").await;
    let Err(PingError::ServerCertificate(e)) = pinged else {
        panic!("expected a TLS error, got {pinged:?}")
    };
    assert!(
        e.starts_with("TLS handshake failed: invalid peer certificate"),
        "{e}"
    );
    assert!(e.contains("other.example"), "{e}");
    assert!(served.unwrap_err().starts_with("TLS handshake failed"));
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused_by_the_client() {
    let (server_side, client_side) = (pki("server"), pki("client"));
    let server = Pki {
        root_pem: client_side.root_pem.clone(),
        server: server_side.server,
        client: server_side.client,
    };
    let (_, pinged, _) = exchange(&server, &client_side, "localhost").await;
    let Err(PingError::ServerCertificate(e)) = pinged else {
        panic!("expected a TLS error, got {pinged:?}")
    };
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn a_client_from_another_ca_is_refused_by_the_server() {
    let (server_side, client_side) = (pki("server"), pki("client"));
    let client = Pki {
        root_pem: server_side.root_pem.clone(),
        server: client_side.server,
        client: client_side.client,
    };
    let (served, pinged, _) = exchange(&server_side, &client, "localhost").await;
    let e = served.unwrap_err();
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
    let Err(PingError::Tls(e)) = pinged else {
        panic!("expected a TLS error, got {pinged:?}")
    };
    assert!(e.contains("received fatal alert"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let p = pki("test");
    let creds = Credentials::from_response("client", &p.client).unwrap();
    let connector = tls::connector(&creds, &TrustBundle::parse(&p.root_pem).unwrap()).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let e = tls::ping(&connector, &addr, "localhost", "x")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PingError::Connect(format!(
            "cannot connect to {addr}: Connection refused (os error 111)"
        ))
    );
}

#[test]
fn replies_are_checked() {
    let line = "ping from c at t";
    assert_eq!(
        check_reply("hello u: ping from c at t", line, "u").unwrap(),
        "u"
    );
    assert_eq!(
        check_reply("hello v: ping from c at t", line, "u").unwrap_err(),
        "the server saw the client as \"v\", not as \"u\""
    );
    assert_eq!(
        check_reply("bye", line, "u").unwrap_err(),
        "unexpected answer from the server: \"bye\""
    );
}

#[test]
fn credentials_are_described_and_renewed_at_80_percent() {
    let p = pki("test");
    let creds = Credentials::from_response("the server certificate", &p.server).unwrap();
    assert_eq!(creds.chain.len(), 2);
    assert_eq!(creds.leaf.subject, "CN=localhost");
    assert_eq!(creds.leaf.names, ["localhost", "demo-server"]);
    assert_eq!(creds.leaf.identity(), "CN=localhost");
    let life = creds
        .leaf
        .not_after
        .duration_since(creds.leaf.not_before)
        .unwrap();
    assert_eq!(creds.leaf.renew_at(), creds.leaf.not_before + life * 4 / 5);
    let client = Credentials::from_response("c", &p.client).unwrap();
    assert_eq!(client.leaf.identity(), CLIENT_URI);

    let mut broken = p.server.clone();
    broken.private_key.bytes = "nonsense".into();
    let e = Credentials::from_response("the server certificate", &broken).unwrap_err();
    assert!(
        e.starts_with("the server certificate: cannot read the private key"),
        "{e}"
    );
    broken.certificate = String::new();
    assert_eq!(
        Credentials::from_response("the server certificate", &broken).unwrap_err(),
        "the server certificate: the response holds no certificate"
    );
    assert_eq!(
        TrustBundle::parse("").unwrap_err(),
        "the trust bundle holds no certificate"
    );
}

#[test]
fn dump_writes_leaf_chain_and_bundle_but_no_key() {
    let p = pki("test");
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), "server", &p.server.certificate, &p.root_pem).unwrap();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let blocks = pem_blocks(&p.server.certificate);
    assert_eq!(blocks.len(), 2);
    assert_eq!(read("server-leaf.pem"), format!("{}\n", blocks[0]));
    assert_eq!(read("server-chain.pem"), format!("{}\n", blocks[1]));
    assert_eq!(read("bundle.pem"), p.root_pem);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bundle.pem", "server-chain.pem", "server-leaf.pem"]);
}
