//! What a handler declares about itself, and the checks it must pass.

use serde::Serialize;

use crate::bindings;
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::names::{check_domain, check_routing_key, error_key};

/// What a handler declares about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The first segment of all its routing keys.
    pub domain: String,
    /// Its own version.
    pub version: String,
    /// The commands it accepts.
    pub commands: Vec<CommandInfo>,
    /// The events it may publish.
    pub events: Vec<String>,
}

impl Manifest {
    /// The routing keys it claims.
    pub fn routing_keys(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|c| c.routing_key.clone())
            .collect()
    }
}

pub(super) fn validate_manifest(
    m: bindings::parallel_you::handler::types::Manifest,
) -> Result<Manifest, String> {
    check_domain(&m.domain).map_err(|e| e.0)?;
    if m.version.trim().is_empty() {
        return Err("its manifest has an empty version".to_owned());
    }
    if m.commands.is_empty() {
        return Err("its manifest declares no commands".to_owned());
    }
    let prefix = format!("{}.", m.domain);
    let mut commands = Vec::with_capacity(m.commands.len());
    for c in m.commands {
        check_routing_key(&c.routing_key).map_err(|e| format!("its manifest: {e}"))?;
        if !c.routing_key.starts_with(&prefix) {
            return Err(format!(
                "it claims routing key {:?}, outside its own domain {:?}: a component may only claim keys under its domain",
                c.routing_key, m.domain
            ));
        }
        if c.routing_key == error_key(&m.domain) {
            return Err(format!(
                "it claims {:?}, which is the domain's error event",
                c.routing_key
            ));
        }
        if commands
            .iter()
            .any(|k: &CommandInfo| k.routing_key == c.routing_key)
        {
            return Err(format!("it declares {:?} twice", c.routing_key));
        }
        let body_schema = c
            .body_schema
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| format!("the body schema of {:?} is not JSON: {e}", c.routing_key))
            })
            .transpose()?;
        commands.push(CommandInfo {
            routing_key: c.routing_key,
            summary: c.summary,
            body_schema,
        });
    }
    Ok(Manifest {
        domain: m.domain,
        version: m.version,
        commands,
        events: m.events,
    })
}
