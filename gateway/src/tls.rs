//! HTTPS and WSS with rustls (ring provider; no OpenSSL).

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{GatewayError, TlsFiles};

/// A rustls server configuration from PEM files.
pub(crate) fn server_config(files: &TlsFiles) -> Result<RustlsConfig, GatewayError> {
    let tls = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        GatewayError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls("cannot read the certificate", &files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls("cannot parse the certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(tls(
            "no certificate in",
            &files.cert,
            &"the file has no CERTIFICATE block",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls("cannot read the private key", &files.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| GatewayError::Tls(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
