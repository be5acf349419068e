//! HTTPS for outbound grants: the `fetch` handler reaches a loopback TLS
//! server whose certificate a test CA (made here with `rcgen`) signed,
//! once the grants trust that CA (`[http] ca_file`, beside the grants
//! file); without it the handshake fails and the handler says why.

use std::sync::Arc;

use parallel_you_host::{HotLoader, HotOutcome};
use tokio_rustls::rustls;

use crate::common::{body, last_error};
use crate::grants::{fetch, fetch_host_with, TestServer};

/// A CA's certificate (PEM) and a TLS acceptor presenting a certificate
/// for `127.0.0.1` that it signed.
fn test_ca_and_server() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "pyou test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_https_works_once_the_ca_is_trusted() {
    let (ca_pem, acceptor) = test_ca_and_server();
    let server = TestServer::start_tls(acceptor).await;
    let url = server.url("/hello");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let allow = format!("[http]\nallow = [\"https://127.0.0.1:{}\"]\n", server.port);

    // Granted, but the server's CA is nobody's root: the handshake fails
    // on the certificate, and the guest is told so.
    let (host, _dir) = fetch_host_with(Some(&allow), &[]).await;
    let events = fetch(&host, &url).await;
    assert_eq!(last_error(&events).as_deref(), Some("tls"), "{events:?}");
    let message = body(&events[0])["message"].as_str().unwrap().to_owned();
    assert!(message.contains("not trusted"), "{message}");
    assert!(
        server.heads.lock().unwrap().is_empty(),
        "no request went out"
    );

    // Trusted through the grants (a path beside the grants file).
    let trusted = format!("{allow}ca_file = \"test-ca.pem\"\n");
    let (host, dir) = fetch_host_with(Some(&trusted), &[("test-ca.pem", &ca_pem)]).await;
    let events = fetch(&host, &url).await;
    assert_eq!(last_error(&events), None, "{events:?}");
    let answer = body(&events[0]);
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["text"], "hello", "{answer}");
    assert_eq!(server.heads.lock().unwrap().len(), 1);
    let listed = serde_json::to_string(&host.status()).unwrap();
    let ca_path = dir.path().join("test-ca.pem").display().to_string();
    assert!(listed.contains(&ca_path), "the CA file is listed: {listed}");

    // A CA file that holds no certificate fails the load, saying why, and
    // the version that trusts the CA serves on.
    std::fs::write(dir.path().join("broken.pem"), "not a certificate").unwrap();
    let broken = format!("{allow}ca_file = \"broken.pem\"\n");
    std::fs::write(dir.path().join("fetch.toml"), broken).unwrap();
    let loader = HotLoader::new(host.clone());
    match loader.load_file(&dir.path().join("fetch.wasm")).await {
        HotOutcome::Failed(reason) => {
            assert!(
                reason.contains("ca_file") && reason.contains("broken.pem"),
                "{reason}"
            )
        }
        other => panic!("a CA file with no certificate loaded: {other:?}"),
    }
    assert_eq!(last_error(&fetch(&host, &url).await), None);
}
