//! Capability grants: what the operator lets one component have beyond its
//! own domain's store, decided beside the component, never by it.
//!
//! The grants of `handlers/dist/<name>.wasm` are in `handlers/dist/<name>.toml`
//! (one file per component, named like it; no file grants nothing):
//!
//! ```toml
//! [http]                      # outbound HTTP through wasi:http (none without this table)
//! allow = ["https://api.example.com", "http://127.0.0.1:8080", "https://*.example.org:*"]
//! allow_private = ["10.1.0.0/16"]  # private networks a name may resolve into
//! timeout_ms = 5000           # per request: connect, first byte, between bytes
//! max_response_bytes = 1048576
//! max_requests = 16           # per command
//! ca_file = "internal-ca.pem" # extra TLS roots (PEM; relative: beside this file)
//!
//! [config]                    # values for wasi:config/store
//! region = "eu"
//!
//! [secrets]                   # also wasi:config values, read at load, never shown
//! api_token = { env = "FETCH_API_TOKEN" }
//! signing_key = { file = "/run/secrets/fetch-key" }
//!
//! [limits]                    # within the host's ceilings
//! deadline_ms = 2000
//! memory_mib = 32
//! instances = "warm"          # or "fresh" (the default)
//! max_idle = 4
//! ```
//!
//! The file is read when the component loads and again whenever it
//! changes (the hot loader treats a changed grants file like a new version
//! of its component); a file that cannot be read or parsed, or that asks
//! past a ceiling, fails the load with the reason, and the version that
//! served keeps serving.

mod config;
pub(crate) mod http;
mod pattern;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::Limits;
use crate::warm::InstancePolicy;
use parallel_you_core::host_info::GrantsInfo;

pub(crate) use config::ConfigValues;
pub use http::HttpGrant;
pub use pattern::{HostPattern, IpNetwork};

/// Largest grants file read, in bytes.
const MAX_FILE: u64 = 64 * 1024;
/// Most config values and secrets together.
const MAX_VALUES: usize = 256;
/// Largest secret file read, in bytes.
const MAX_SECRET: u64 = 64 * 1024;
/// Most allow-list entries.
const MAX_PATTERNS: usize = 256;

/// Why a grants file cannot be used: the load of its component fails with
/// this reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("grants {file}: {reason}")]
pub struct GrantsError {
    /// The grants file.
    pub file: PathBuf,
    /// What is wrong with it, phrased so the operator can fix it.
    pub reason: String,
}

/// What one component is granted, resolved (secrets read) at load.
#[derive(Clone, Default)]
pub struct Grants {
    /// The file they came from; `None` when the component has none.
    pub file: Option<PathBuf>,
    /// SHA-256 of the file's bytes: a changed file is a new version.
    pub digest: Option<String>,
    /// Outbound HTTP, when granted.
    pub http: Option<Arc<HttpGrant>>,
    /// Config values and secrets, for `wasi:config/store`.
    pub(crate) values: Arc<ConfigValues>,
    /// Names of the plain config values (for listings).
    pub config_keys: Vec<String>,
    /// Names of the secrets (for listings; their values are never shown).
    pub secret_keys: Vec<String>,
    /// Its own deadline, within the host's ceiling.
    pub deadline: Option<Duration>,
    /// Its own memory cap in bytes, within the host's ceiling.
    pub memory: Option<usize>,
    /// Its own instance policy.
    pub instances: Option<InstancePolicy>,
}

impl std::fmt::Debug for Grants {
    // Secrets stay out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("file", &self.file)
            .field("http", &self.http)
            .field("config_keys", &self.config_keys)
            .field("secret_keys", &self.secret_keys)
            .field("deadline", &self.deadline)
            .field("memory", &self.memory)
            .field("instances", &self.instances)
            .finish()
    }
}

/// The grants file of a component file: `<name>.toml` beside `<name>.wasm`.
pub fn grants_path(component: &Path) -> PathBuf {
    component.with_extension("toml")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    http: Option<HttpTable>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
    limits: Option<LimitsTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpTable {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    allow_private: Vec<String>,
    timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
    max_requests: Option<u32>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    env: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsTable {
    deadline_ms: Option<u64>,
    memory_mib: Option<usize>,
    instances: Option<String>,
    max_idle: Option<usize>,
}

impl Grants {
    /// Reads the grants of `component` (none when its grants file does not
    /// exist), checking them against the host's `limits`.
    pub async fn for_component(component: &Path, limits: &Limits) -> Result<Grants, GrantsError> {
        let file = grants_path(component);
        let fail = |reason: String| GrantsError {
            file: file.clone(),
            reason,
        };
        let bytes = match read_bounded(&file, MAX_FILE).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Grants::default()),
            Err(e) => return Err(fail(e)),
        };
        let digest = crate::cache::sha256_hex(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_owned()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut grants = Grants::resolve(parsed, dir, limits).await.map_err(fail)?;
        grants.file = Some(file.clone());
        grants.digest = Some(digest);
        Ok(grants)
    }

    /// The digest of the grants file of `component` as it is now (`None`
    /// when there is none or it cannot be read): compared with a serving
    /// version's to tell whether its grants changed.
    pub async fn digest_of(component: &Path) -> Option<String> {
        let bytes = read_bounded(&grants_path(component), MAX_FILE)
            .await
            .ok()??;
        Some(crate::cache::sha256_hex(&bytes))
    }

    /// The grants `file` (in the folder `dir`) says, checked.
    async fn resolve(file: File, dir: &Path, limits: &Limits) -> Result<Grants, String> {
        let http = match file.http {
            Some(t) => {
                let ca_file = t.ca_file.as_ref().map(|f| dir.join(f));
                let tls = match &ca_file {
                    Some(f) => {
                        let pem = read_bounded(f, tls::MAX_CA_FILE).await?.ok_or_else(|| {
                            format!("[http] ca_file {}: no such file", f.display())
                        })?;
                        tls::config_with_pem(&pem)
                            .map_err(|e| format!("[http] ca_file {}: {e}", f.display()))?
                    }
                    None => tls::default_config()?,
                };
                let mut grant = http_grant(t, limits, tls)?;
                grant.ca_file = ca_file;
                Some(Arc::new(grant))
            }
            None => None,
        };
        if file.config.len() + file.secrets.len() > MAX_VALUES {
            return Err(format!(
                "at most {MAX_VALUES} config values and secrets in all"
            ));
        }
        let mut values = BTreeMap::new();
        for (key, value) in &file.config {
            values.insert(key.clone(), value.clone());
        }
        for (key, source) in &file.secrets {
            if values.contains_key(key) {
                return Err(format!("{key:?} is both a config value and a secret"));
            }
            values.insert(key.clone(), read_secret(key, source).await?);
        }
        let (deadline, memory, instances) = match file.limits {
            Some(t) => own_limits(t, limits)?,
            None => (None, None, None),
        };
        Ok(Grants {
            file: None,
            digest: None,
            http,
            values: Arc::new(ConfigValues::new(values)),
            config_keys: file.config.into_keys().collect(),
            secret_keys: file.secrets.into_keys().collect(),
            deadline,
            memory,
            instances,
        })
    }

    /// What `pyou handlers` shows: every grant, secrets by name only.
    pub fn info(&self) -> Option<GrantsInfo> {
        let file = self.file.as_ref()?;
        Some(GrantsInfo {
            file: file.display().to_string(),
            http_allow: self
                .http
                .iter()
                .flat_map(|h| h.allow.iter().map(ToString::to_string))
                .collect(),
            http_allow_private: self
                .http
                .iter()
                .flat_map(|h| h.allow_private.iter().map(ToString::to_string))
                .collect(),
            http_timeout_ms: self.http.as_ref().map(|h| millis(h.timeout)),
            http_max_response_bytes: self.http.as_ref().map(|h| h.max_response_bytes),
            http_ca_file: self
                .http
                .as_ref()
                .and_then(|h| h.ca_file.as_ref())
                .map(|f| f.display().to_string()),
            config: self.config_keys.clone(),
            secrets: self.secret_keys.clone(),
            deadline_ms: self.deadline.map(millis),
            memory_mib: self.memory.map(|m| m / (1024 * 1024)),
            instances: self.instances.map(|p| match p {
                InstancePolicy::Fresh => "fresh".to_owned(),
                InstancePolicy::Warm { max_idle } => format!("warm (max_idle {max_idle})"),
            }),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn http_grant(
    t: HttpTable,
    limits: &Limits,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
) -> Result<HttpGrant, String> {
    if t.allow.len() + t.allow_private.len() > MAX_PATTERNS {
        return Err(format!("[http] has more than {MAX_PATTERNS} entries"));
    }
    let allow = t
        .allow
        .iter()
        .map(|p| HostPattern::parse(p).map_err(|e| format!("[http] allow {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let allow_private = t
        .allow_private
        .iter()
        .map(|p| IpNetwork::parse(p).map_err(|e| format!("[http] allow_private {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = Duration::from_millis(t.timeout_ms.unwrap_or(http::DEFAULT_TIMEOUT_MS));
    if timeout.is_zero() || timeout > limits.max_deadline {
        return Err(format!(
            "[http] timeout_ms must be between 1 and the host's deadline ceiling, {} ms",
            limits.max_deadline.as_millis()
        ));
    }
    let max_response_bytes = t.max_response_bytes.unwrap_or(http::DEFAULT_MAX_RESPONSE);
    if max_response_bytes > http::MAX_RESPONSE_CEILING {
        return Err(format!(
            "[http] max_response_bytes may be at most {}",
            http::MAX_RESPONSE_CEILING
        ));
    }
    let max_requests = t.max_requests.unwrap_or(http::DEFAULT_MAX_REQUESTS);
    if max_requests > http::MAX_REQUESTS_CEILING {
        return Err(format!(
            "[http] max_requests may be at most {}",
            http::MAX_REQUESTS_CEILING
        ));
    }
    Ok(HttpGrant {
        allow,
        allow_private,
        timeout,
        max_response_bytes,
        max_requests,
        ca_file: None,
        tls,
    })
}

type OwnLimits = (Option<Duration>, Option<usize>, Option<InstancePolicy>);

fn own_limits(t: LimitsTable, limits: &Limits) -> Result<OwnLimits, String> {
    let deadline = match t.deadline_ms {
        None => None,
        Some(ms) => {
            let d = Duration::from_millis(ms);
            if d.is_zero() || d > limits.max_deadline {
                return Err(format!(
                    "[limits] deadline_ms {ms} is past the host's ceiling of {} ms (--max-deadline-ms)",
                    limits.max_deadline.as_millis()
                ));
            }
            Some(d)
        }
    };
    let memory = match t.memory_mib {
        None => None,
        Some(mib) => {
            let bytes = mib.saturating_mul(1024 * 1024);
            if mib == 0 || bytes > limits.memory_ceiling() {
                return Err(format!(
                    "[limits] memory_mib {mib} is past the host's ceiling of {} MiB (--max-memory-mib)",
                    limits.memory_ceiling() / (1024 * 1024)
                ));
            }
            Some(bytes)
        }
    };
    let instances = match (t.instances.as_deref(), t.max_idle) {
        (None, None) => None,
        (Some("fresh"), None) => Some(InstancePolicy::Fresh),
        (Some("warm"), max_idle) => Some(InstancePolicy::Warm {
            max_idle: max_idle
                .unwrap_or(1)
                .clamp(1, crate::warm::WARM_SLOTS as usize),
        }),
        (Some("fresh") | None, Some(_)) => {
            return Err("[limits] max_idle applies to instances = \"warm\" only".to_owned())
        }
        (Some(other), _) => {
            return Err(format!(
                "[limits] instances = {other:?}: use \"fresh\" or \"warm\""
            ))
        }
    };
    Ok((deadline, memory, instances))
}

async fn read_secret(key: &str, source: &SecretSource) -> Result<String, String> {
    match (&source.env, &source.file) {
        (Some(var), None) => std::env::var(var).map_err(|_| {
            format!("secret {key:?}: the environment variable {var} is not set (or not UTF-8)")
        }),
        (None, Some(path)) => match read_bounded(path, MAX_SECRET).await {
            Ok(Some(bytes)) => String::from_utf8(bytes)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|_| format!("secret {key:?}: {} is not UTF-8", path.display())),
            Ok(None) => Err(format!("secret {key:?}: {} does not exist", path.display())),
            Err(e) => Err(format!("secret {key:?}: {e}")),
        },
        _ => Err(format!(
            "secret {key:?}: give exactly one of `env = \"VAR\"` or `file = \"PATH\"`"
        )),
    }
}

/// The bytes of `path`, `None` when it does not exist, an error when it
/// cannot be read or is larger than `max`.
async fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    use tokio::io::AsyncReadExt as _;
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    async fn parse(text: &str) -> Result<Grants, String> {
        let parsed: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Grants::resolve(parsed, Path::new("."), &Limits::default()).await
    }

    #[tokio::test]
    async fn nothing_is_granted_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let grants = Grants::for_component(&dir.path().join("x.wasm"), &Limits::default())
            .await
            .unwrap();
        assert!(grants.http.is_none() && grants.file.is_none());
        assert!(grants.info().is_none());
    }

    #[tokio::test]
    async fn a_full_file_resolves_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let text = format!(
            "[http]\nallow = [\"http://127.0.0.1:8080\"]\ntimeout_ms = 100\n\
             [config]\nregion = \"eu\"\n[secrets]\ntoken = {{ file = {:?} }}\nhome = {{ env = \"PATH\" }}\n\
             [limits]\ndeadline_ms = 100\nmemory_mib = 16\ninstances = \"warm\"\nmax_idle = 2\n",
            secret.display().to_string()
        );
        let component = dir.path().join("fetch.wasm");
        std::fs::write(grants_path(&component), text).unwrap();
        let grants = Grants::for_component(&component, &Limits::default())
            .await
            .unwrap();
        assert_eq!(grants.values.get("token").as_deref(), Some("s3cret"));
        assert_eq!(grants.values.get("region").as_deref(), Some("eu"));
        assert_eq!(grants.memory, Some(16 << 20));
        assert_eq!(grants.instances, Some(InstancePolicy::Warm { max_idle: 2 }));
        let shown =
            serde_json::to_string(&grants.info().unwrap()).unwrap() + &format!("{grants:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("token") && shown.contains("127.0.0.1:8080"));
    }

    #[tokio::test]
    async fn bad_files_say_what_is_wrong() {
        for (text, says) in [
            ("[http]\nallow = [\"ftp://x\"]", "scheme"),
            ("[http]\nallow = [\"http://x/path\"]", "path"),
            ("[http]\nallow_private = [\"10.0.0.0/33\"]", "prefix"),
            (
                "[http]\nca_file = \"/surely/not/a/ca.pem\"",
                "ca_file /surely/not/a/ca.pem: no such file",
            ),
            ("[htp]\n", "unknown field"),
            ("[limits]\ndeadline_ms = 999999999", "ceiling"),
            ("[limits]\nmemory_mib = 100000", "ceiling"),
            ("[limits]\ninstances = \"hot\"", "fresh"),
            (
                "[secrets]\nx = { env = \"PYOU_SURELY_UNSET_VAR\" }",
                "not set",
            ),
            ("[secrets]\nx = {}", "exactly one"),
            (
                "[config]\nx = \"1\"\n[secrets]\nx = { env = \"PATH\" }",
                "both",
            ),
        ] {
            let err = parse(text).await.err().unwrap_or_default();
            assert!(err.contains(says), "{text:?} gave {err:?}");
        }
    }
}
