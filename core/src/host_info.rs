//! What a host tells about itself to the parts that run beside it (the
//! gateway): the commands it serves, its handlers' status, its metrics.
//!
//! The gateway depends on this trait, not on the host, so a gateway-only
//! build links no WebAssembly runtime, broker client or database driver.

use serde::{Deserialize, Serialize};

/// One command a handler accepts, as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandInfo {
    /// Full routing key.
    pub routing_key: String,
    /// One line for API listings.
    pub summary: String,
    /// JSON Schema of the body, if declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_schema: Option<serde_json::Value>,
    /// Sent only by the host's timers: refused from clients and left out
    /// of the API listings.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

impl CommandInfo {
    /// A command with no summary or schema, not internal: what tests and
    /// tools bind when they have no manifest.
    pub fn bare(routing_key: &str) -> Self {
        CommandInfo {
            routing_key: routing_key.to_owned(),
            summary: String::new(),
            body_schema: None,
            internal: false,
        }
    }
}

/// One query a reactor answers, as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryInfo {
    /// `[a-z0-9_-]+`, unique within the reactor.
    pub name: String,
    /// One line for API listings.
    pub summary: String,
    /// JSON Schema of the parameters object, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<serde_json::Value>,
}

/// What a reactor declares beyond its domain and version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReactorInfo {
    /// Event routing-key patterns it subscribes to (AMQP topic semantics).
    pub subscribes: Vec<String>,
    /// Routing keys of the commands it may send.
    pub sends: Vec<String>,
    /// The queries it answers.
    pub queries: Vec<QueryInfo>,
}

/// What clients are shown of a component's path: its file name. Events
/// and `GET /handlers` reach anyone who can use the API; where the
/// operator keeps the folder is not theirs to know.
pub fn public_file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What the operator granted a component in its grants file (secrets by
/// name only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantsInfo {
    /// The grants file.
    pub file: String,
    /// `scheme://host[:port]` patterns it may send HTTP requests to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_allow: Vec<String>,
    /// Internal networks its allowed host names may resolve into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_allow_private: Vec<String>,
    /// Bound on each phase of one request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_timeout_ms: Option<u64>,
    /// Most bytes of one response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_max_response_bytes: Option<u64>,
    /// The file of extra TLS roots its HTTPS trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_ca_file: Option<String>,
    /// Names of its config values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Names of its secrets (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Its own deadline, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Its own memory cap, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<usize>,
    /// Its own instance policy (`fresh`, `warm (max_idle n)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<String>,
}

/// One line of `pyou handlers`: a loaded component or a file that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerStatus {
    /// The component file.
    pub file: String,
    /// Its domain, when loaded.
    pub domain: Option<String>,
    /// Its version, when loaded: the manifest's `version`.
    pub version: Option<String>,
    /// Hex SHA-256 of the loaded component's bytes: with `version`, what
    /// tells two builds apart.
    pub sha256: Option<String>,
    /// When the serving version was loaded (RFC 3339, UTC).
    pub loaded_at: Option<String>,
    /// How long loading it took, in milliseconds (compile or cache fetch,
    /// link, manifest).
    pub load_ms: Option<u64>,
    /// Whether its compiled code came from the on-disk cache.
    pub from_cache: Option<bool>,
    /// The routing keys it serves (empty when it failed, and for a reactor).
    pub routing_keys: Vec<String>,
    /// What the component is, when loaded: `handler` or `reactor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A reactor's subscriptions, sends and queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactor: Option<ReactorInfo>,
    /// What its grants file gives it, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<GrantsInfo>,
    /// Why it failed to load, if it did. A file that serves and has an
    /// error is one whose newer content failed: the older version serves.
    pub error: Option<String>,
}

/// A host, as the gateway sees it.
pub trait HostInfo: Send + Sync {
    /// The manifest entry of the command a loaded handler serves under
    /// `routing_key`, if any.
    fn command(&self, routing_key: &str) -> Option<CommandInfo>;

    /// Every loaded component and every file that failed, by file.
    fn status(&self) -> Vec<HandlerStatus>;

    /// Appends the host's metrics in the Prometheus text format.
    fn render_metrics(&self, out: &mut String);

    /// Answers the query `name` of the reactor of `domain` with `params`
    /// (a JSON object's text): the answer's JSON text, or why not.
    fn query<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        params: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<String, crate::error::ErrorBody>>;
}
