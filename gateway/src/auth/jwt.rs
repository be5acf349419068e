//! Verifying bearer tokens (JWT) with the `jsonwebtoken` crate: HS256
//! with a shared secret, or RS256, ES256 and EdDSA with the public keys of
//! a JWKS file, re-read when it changes.
//!
//! A token's algorithm must be one a configured key is for (a token
//! naming `none`, or HS256 when only public keys are configured, is
//! refused before any signature is checked); keys a token carries itself
//! (`jwk`, `jku` headers) are never used. `exp` and `sub` are required,
//! `nbf` is checked when present, both with a small leeway for clock skew;
//! `iss` and `aud` when configured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde::Deserialize;

use super::scope::{ScopeClaim, Scopes};

/// Largest token accepted, in bytes: a bound on what a client makes the
/// gateway decode and verify.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Leeway on `exp` and `nbf` for clocks that disagree.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Most keys kept from a JWKS file.
const MAX_KEYS: usize = 64;
/// How often the JWKS file is looked at for a change.
const RECHECK: Duration = Duration::from_secs(1);

/// How `--auth jwt` verifies tokens.
#[derive(Clone, Default)]
pub struct JwtSettings {
    /// The HS256 secret (`PYOU_JWT_SECRET`).
    pub hs256_secret: Option<Vec<u8>>,
    /// A JWKS file of public keys (RS256, ES256, EdDSA).
    pub jwks: Option<PathBuf>,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The required `aud`, if any.
    pub audience: Option<String>,
    /// Leeway on `exp` and `nbf` (zero: [`DEFAULT_LEEWAY`]).
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("JwtSettings")
            .field("hs256", &self.hs256_secret.is_some())
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Why the verifier cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// Neither a secret nor a JWKS file.
    #[error("--auth jwt needs PYOU_JWT_SECRET (HS256) or --jwks FILE (RS256, ES256, EdDSA)")]
    NoKeys,
    /// The secret is too short to be one.
    #[error("PYOU_JWT_SECRET must be at least 32 bytes")]
    WeakSecret,
    /// The JWKS file cannot be used.
    #[error("the JWKS file {file}: {reason}")]
    Jwks {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a verified token says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its subject.
    pub subject: String,
    /// What it may do.
    pub scopes: Scopes,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    /// Azure AD and others spell it `scp`.
    #[serde(default)]
    scp: Option<ScopeClaim>,
}

struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct Jwks {
    file: PathBuf,
    keys: Vec<PublicKey>,
    /// The file's modification time and length when read.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// Verifies tokens.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Mutex<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

fn stamp(file: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(file).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The keys of a JWKS document that this gateway can verify with.
fn read_jwks(file: &Path) -> Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in set.keys.iter().take(MAX_KEYS) {
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), _) | (None, AlgorithmParameters::RSA(_)) => {
                Algorithm::RS256
            }
            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
            (None, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            (Some(KeyAlgorithm::EdDSA), _) => Algorithm::EdDSA,
            (None, AlgorithmParameters::OctetKeyPair(p)) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            // Other algorithms and secret keys are not for a JWKS file.
            _ => continue,
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            format!(
                "key {:?} cannot be used: {e}",
                jwk.common.key_id.as_deref().unwrap_or("")
            )
        })?;
        keys.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("it holds no RS256, ES256 or EdDSA public key".to_owned());
    }
    Ok(keys)
}

impl JwtVerifier {
    /// A verifier for `settings`; reads the JWKS file once now.
    pub fn new(settings: &JwtSettings) -> Result<Self, JwtSetupError> {
        let hs256 = match &settings.hs256_secret {
            Some(s) if s.len() < 32 => return Err(JwtSetupError::WeakSecret),
            Some(s) => Some(DecodingKey::from_secret(s).map_err(|_| JwtSetupError::WeakSecret)?),
            None => None,
        };
        let jwks = match &settings.jwks {
            Some(file) => {
                let stamp = stamp(file);
                let keys = read_jwks(file).map_err(|reason| JwtSetupError::Jwks {
                    file: file.clone(),
                    reason,
                })?;
                Some(Mutex::new(Jwks {
                    file: file.clone(),
                    keys,
                    stamp,
                    checked: Instant::now(),
                }))
            }
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            return Err(JwtSetupError::NoKeys);
        }
        Ok(JwtVerifier {
            hs256,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: if settings.leeway.is_zero() {
                DEFAULT_LEEWAY
            } else {
                settings.leeway
            },
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        v
    }

    /// Re-reads the JWKS file if it changed since it was last read (looked
    /// at most once a [`RECHECK`]); a file that no longer reads keeps the
    /// keys read before, and says so in the log.
    fn refresh(jwks: &mut Jwks) {
        if jwks.checked.elapsed() < RECHECK {
            return;
        }
        jwks.checked = Instant::now();
        let now = stamp(&jwks.file);
        if now == jwks.stamp {
            return;
        }
        match read_jwks(&jwks.file) {
            Ok(keys) => {
                tracing::info!(file = %jwks.file.display(), keys = keys.len(), "JWKS file re-read");
                jwks.keys = keys;
                jwks.stamp = now;
            }
            Err(reason) => {
                tracing::warn!(file = %jwks.file.display(), %reason, "JWKS file unusable; keeping the keys read before");
                jwks.stamp = now;
            }
        }
    }

    /// Verifies `token`: its signature, `exp`, `nbf`, `iss` and `aud`.
    /// The error says why it was refused, for the client.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(format!("the token is over {MAX_TOKEN_LEN} bytes"));
        }
        let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        let claims = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .hs256
                    .as_ref()
                    .ok_or("HS256 tokens are not accepted here (no PYOU_JWT_SECRET)")?;
                self.decode(token, key, Algorithm::HS256)?
            }
            alg @ (Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or("tokens signed with a public key are not accepted here (no --jwks)")?;
                let mut jwks = jwks.lock();
                Self::refresh(&mut jwks);
                let mut last = format!("no key of the JWKS file is for {alg:?} tokens");
                let mut found = None;
                for k in jwks.keys.iter().filter(|k| k.alg == alg) {
                    if header.kid.is_some() && k.kid != header.kid {
                        last = format!("no {alg:?} key has the token's kid");
                        continue;
                    }
                    match self.decode(token, &k.key, alg) {
                        Ok(c) => {
                            found = Some(c);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                found.ok_or(last)?
            }
            other => {
                return Err(format!(
                    "tokens signed with {other:?} are not accepted here"
                ))
            }
        };
        let scopes = Scopes::from_claim(claims.scope.or(claims.scp));
        Ok(Verified {
            subject: claims.sub,
            scopes,
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, String> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, key, &self.validation(alg)).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidAudience => "the token is not for this audience".to_owned(),
                ErrorKind::InvalidIssuer => "the token is not from the expected issuer".to_owned(),
                ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                _ => format!("the token was refused: {e}"),
            })?;
        let sub = &data.claims.sub;
        parallel_you_core::names::check_user_id(sub)
            .map_err(|e| format!("the token's `sub`: {e}"))?;
        Ok(data.claims)
    }
}
