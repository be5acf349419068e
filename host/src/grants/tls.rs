//! The roots a component's outbound HTTPS trusts: the webpki roots (the
//! Mozilla set) and, when its grants name a `ca_file`, the operator's own
//! (a private CA), added to them.

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Largest CA file read, in bytes.
pub(crate) const MAX_CA_FILE: u64 = 1024 * 1024;
/// Most certificates taken from one CA file.
const MAX_CA_CERTS: usize = 256;

/// The client configuration with the webpki roots alone, made once.
pub(crate) fn default_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| config_with(&[])).clone()
}

/// The client configuration trusting the webpki roots and the
/// certificates of `pem` (one or more `CERTIFICATE` blocks), or why `pem`
/// cannot be used.
pub(crate) fn config_with_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut extra = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        if extra.len() == MAX_CA_CERTS {
            return Err(format!("more than {MAX_CA_CERTS} certificates"));
        }
        extra.push(cert);
    }
    if extra.is_empty() {
        return Err("it holds no PEM `CERTIFICATE`".to_owned());
    }
    config_with(&extra)
}

fn config_with(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate cannot be a root: {e}"))?;
    }
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
}

/// Whether a failed handshake failed on the server's certificate (an
/// issuer not trusted, another name, expired), rather than the protocol.
pub(crate) fn is_certificate_error(err: &std::io::Error) -> bool {
    use tokio_rustls::rustls::Error;
    err.get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .is_some_and(|e| {
            matches!(
                e,
                Error::InvalidCertificate(_) | Error::NoCertificatesPresented
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_certificates() {
        assert!(default_config().is_ok());
        let err = config_with_pem(b"nothing here").err().unwrap_or_default();
        assert!(err.contains("no PEM"), "{err}");
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(config_with_pem(bad).is_err());
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            tokio_rustls::rustls::Error::InvalidCertificate(
                tokio_rustls::rustls::CertificateError::UnknownIssuer,
            ),
        );
        assert!(is_certificate_error(&io));
        assert!(!is_certificate_error(&std::io::Error::other("eof")));
    }
}
