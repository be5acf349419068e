//! How the gateway authenticates its callers: `--auth none|jwt`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use parallel_you_gateway::auth::{JwtSettings, JwtVerifier};
use parallel_you_gateway::Auth;

/// The environment variable holding the HS256 secret: never a flag, so it
/// stays out of `ps` and shell histories.
const SECRET_VAR: &str = "PYOU_JWT_SECRET";

/// `--auth` and the settings of `--auth jwt`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AuthArgs {
    /// `none` (anyone may call; for local use) or `jwt` (bearer tokens:
    /// HS256 with the secret in PYOU_JWT_SECRET, or RS256/ES256/EdDSA with
    /// the public keys of --jwks).
    #[arg(long, env = "PYOU_AUTH", value_enum, default_value = "none")]
    pub(crate) auth: AuthMode,
    /// A JWKS file of public keys for `--auth jwt`, re-read when it changes.
    #[arg(long, env = "PYOU_JWKS")]
    pub(crate) jwks: Option<PathBuf>,
    /// The `iss` every token must carry.
    #[arg(long, env = "PYOU_JWT_ISSUER")]
    pub(crate) jwt_issuer: Option<String>,
    /// The `aud` every token must carry.
    #[arg(long, env = "PYOU_JWT_AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,
}

/// The value of `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuthMode {
    /// No authentication.
    None,
    /// Bearer JWTs.
    Jwt,
}

impl AuthArgs {
    /// The gateway's [`Auth`].
    pub(crate) fn auth(&self) -> anyhow::Result<Auth> {
        match self.auth {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Jwt => {
                let settings = JwtSettings {
                    hs256_secret: std::env::var_os(SECRET_VAR)
                        .map(|s| s.into_encoded_bytes())
                        .filter(|s| !s.is_empty()),
                    jwks: self.jwks.clone(),
                    issuer: self.jwt_issuer.clone(),
                    audience: self.jwt_audience.clone(),
                    leeway: std::time::Duration::ZERO,
                };
                let verifier = JwtVerifier::new(&settings).context("--auth jwt")?;
                Ok(Auth::Jwt(Arc::new(verifier)))
            }
        }
    }
}
