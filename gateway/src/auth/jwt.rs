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
//!
//! A token verified once is remembered (`cache.rs`) and only checked
//! against the clock when it comes again, until the keys change.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde::Deserialize;

use super::cache::{digest, TokenCache, Validity};
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
/// Why an expired token is refused.
pub(super) const EXPIRED: &str = "the token has expired";
/// Why a token not valid yet is refused.
pub(super) const IMMATURE: &str = "the token is not valid yet (nbf)";

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
    /// Required (the validation says so); a number, maybe with a fraction.
    exp: f64,
    #[serde(default)]
    nbf: Option<f64>,
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
    cache: TokenCache,
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
            cache: TokenCache::default(),
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
    /// keys read before, and says so in the log. Any change forgets the
    /// tokens verified before it (a key may have been withdrawn).
    fn refresh(&self) {
        let Some(jwks) = &self.jwks else { return };
        let mut jwks = jwks.lock();
        if jwks.checked.elapsed() < RECHECK {
            return;
        }
        jwks.checked = Instant::now();
        let now = stamp(&jwks.file);
        if now == jwks.stamp {
            return;
        }
        // Under the lock, so no token is verified with the old keys after
        // this (and one verified before is not kept: the generation).
        self.cache.invalidate();
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

    /// Verifies `token`: its signature, `exp`, `nbf`, `iss` and `aud`
    /// (or, for a token verified before with the same keys, `exp` and
    /// `nbf` again). The error says why it was refused, for the client.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`JwtVerifier::verify`] with the cache's clock at `now` (seconds
    /// since the epoch); a token not in the cache is verified against the
    /// system clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Verified, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(format!("the token is over {MAX_TOKEN_LEN} bytes"));
        }
        self.refresh();
        let key = digest(token);
        if let Some(known) = self.cache.get(&key, now, self.leeway.as_secs()) {
            return known;
        }
        let generation = self.cache.generation();
        let (verified, validity) = self.verify_signed(token)?;
        self.cache
            .insert(key, generation, verified.clone(), validity);
        Ok(verified)
    }

    /// Verifies `token` in full, with no cache.
    fn verify_signed(&self, token: &str) -> Result<(Verified, Validity), String> {
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
                let jwks = jwks.lock();
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
        // As `jsonwebtoken` reads them.
        let seconds = |n: f64| n.max(0.0).round() as u64;
        let validity = Validity {
            exp: seconds(claims.exp),
            nbf: claims.nbf.map(seconds),
        };
        let scopes = Scopes::from_claim(claims.scope.or(claims.scp));
        Ok((
            Verified {
                subject: claims.sub,
                scopes,
            },
            validity,
        ))
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, String> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, key, &self.validation(alg)).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => EXPIRED.to_owned(),
                ErrorKind::ImmatureSignature => IMMATURE.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a unit test secret of at least 32 bytes";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn hs256(claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_secret(SECRET).unwrap_or_else(|e| panic!("{e}"));
        encode(&Header::new(Algorithm::HS256), claims, &key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn verifier(jwks: Option<PathBuf>) -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            hs256_secret: Some(SECRET.to_vec()),
            jwks,
            ..JwtSettings::default()
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_cached_token_still_expires() {
        let v = verifier(None);
        let exp = now() + 120;
        let token = hs256(&json!({ "sub": "alice", "exp": exp, "scope": "thread.*" }));
        let first = v.verify(&token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.subject, "alice");
        assert_eq!(v.cache.size().0, 1, "remembered");
        let again = v.verify_at(&token, now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.scopes, first.scopes);
        // Past `exp` and the leeway, the remembered token is refused as an
        // expired one is, and forgotten.
        let later = exp + DEFAULT_LEEWAY.as_secs() + 1;
        assert_eq!(v.verify_at(&token, later).err().as_deref(), Some(EXPIRED));
        assert_eq!(v.cache.size().0, 0);
        // Failures are not remembered.
        let bad = hs256(&json!({ "sub": "bob", "exp": now() - 300 }));
        assert_eq!(v.verify(&bad).err().as_deref(), Some(EXPIRED));
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(v.verify(&tampered).is_err());
        assert_eq!(v.cache.size().0, 0);
    }

    /// An Ed25519 key: its signing key and its public JWK.
    fn ed_key(kid: &str) -> (EncodingKey, serde_json::Value) {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap_or_else(|e| panic!("{e}"));
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        (
            EncodingKey::from_ed_der(&pair.serialize_der()),
            json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA" }),
        )
    }

    #[test]
    fn a_changed_jwks_file_forgets_the_tokens_of_its_old_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("jwks.json");
        let (k1, jwk1) = ed_key("k1");
        let (_, jwk2) = ed_key("k2");
        let write = |keys: &[&serde_json::Value]| {
            std::fs::write(&file, json!({ "keys": keys }).to_string())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        write(&[&jwk1]);
        let v = verifier(Some(file.clone()));
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let token = encode(&header, &json!({ "sub": "alice", "exp": now() + 300 }), &k1)
            .unwrap_or_else(|e| panic!("{e}"));
        let hs = hs256(&json!({ "sub": "bob", "exp": now() + 300 }));
        assert!(v.verify(&token).is_ok());
        assert!(v.verify(&hs).is_ok());
        assert_eq!(v.cache.size().0, 2);
        // k1 withdrawn: the file is looked at again after RECHECK.
        write(&[&jwk2]);
        std::thread::sleep(RECHECK + Duration::from_millis(100));
        let refused = v.verify(&token).err().unwrap_or_default();
        assert!(refused.contains("kid"), "{refused}");
        assert_eq!(v.cache.size().0, 0, "every entry went with the old keys");
        assert!(v.verify(&hs).is_ok(), "HS256 tokens verify again");
    }
}
