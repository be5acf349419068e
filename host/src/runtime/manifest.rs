//! What a handler declares about itself, and the checks it must pass.

use std::collections::BTreeSet;

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

/// Most commands one manifest may declare.
pub(crate) const MAX_COMMANDS: usize = 1_000;
/// Most events one manifest may declare.
pub(crate) const MAX_EVENTS: usize = 1_000;
/// Longest command summary, in bytes.
pub(crate) const MAX_SUMMARY: usize = 1024;
/// Largest command body schema, in bytes of JSON text.
pub(crate) const MAX_BODY_SCHEMA: usize = 64 * 1024;

/// The manifest, checked: every list and text bounded (the `MAX_*` limits
/// here; routing keys by their grammar), keys well formed, unique and in
/// the handler's domain. Each check is O(n log n) at most, so a huge
/// manifest is refused quickly rather than stalling the host.
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
    if m.commands.len() > MAX_COMMANDS {
        return Err(format!(
            "its manifest declares {} commands, more than the limit of {MAX_COMMANDS}",
            m.commands.len()
        ));
    }
    if m.events.len() > MAX_EVENTS {
        return Err(format!(
            "its manifest declares {} events, more than the limit of {MAX_EVENTS}",
            m.events.len()
        ));
    }
    let prefix = format!("{}.", m.domain);
    let mut commands = Vec::with_capacity(m.commands.len());
    let mut seen = BTreeSet::new();
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
        if !seen.insert(c.routing_key.clone()) {
            return Err(format!("it declares {:?} twice", c.routing_key));
        }
        if c.summary.len() > MAX_SUMMARY {
            return Err(format!(
                "the summary of {:?} is {} bytes, more than the limit of {MAX_SUMMARY}",
                c.routing_key,
                c.summary.len()
            ));
        }
        if let Some(schema) = c.body_schema.as_ref().filter(|s| s.len() > MAX_BODY_SCHEMA) {
            return Err(format!(
                "the body schema of {:?} is {} bytes, more than the limit of {MAX_BODY_SCHEMA}",
                c.routing_key,
                schema.len()
            ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use bindings::parallel_you::handler::types;

    fn manifest(commands: usize) -> types::Manifest {
        types::Manifest {
            domain: "wide".to_owned(),
            version: "1".to_owned(),
            commands: (0..commands)
                .map(|i| types::CommandInfo {
                    routing_key: format!("wide.c{i}"),
                    summary: String::new(),
                    body_schema: None,
                })
                .collect(),
            events: Vec::new(),
        }
    }

    #[test]
    fn commands_are_capped() {
        let at_limit = validate_manifest(manifest(MAX_COMMANDS));
        assert_eq!(at_limit.map(|m| m.commands.len()), Ok(MAX_COMMANDS));
        let past = validate_manifest(manifest(MAX_COMMANDS + 1)).map(|_| ());
        assert_eq!(
            past,
            Err("its manifest declares 1001 commands, more than the limit of 1000".to_owned())
        );
    }

    #[test]
    fn events_summaries_and_schemas_are_capped() {
        let mut m = manifest(1);
        m.events = (0..=MAX_EVENTS).map(|i| format!("wide.e{i}")).collect();
        let err = validate_manifest(m).map(|_| ()).unwrap_err();
        assert!(err.contains("limit of 1000"), "{err}");

        let mut m = manifest(1);
        m.commands[0].summary = "s".repeat(MAX_SUMMARY + 1);
        let err = validate_manifest(m).map(|_| ()).unwrap_err();
        assert!(err.contains("summary"), "{err}");

        let mut m = manifest(1);
        let schema = format!(r#"{{"description":"{}"}}"#, "d".repeat(MAX_BODY_SCHEMA));
        m.commands[0].body_schema = Some(schema);
        let err = validate_manifest(m).map(|_| ()).unwrap_err();
        assert!(err.contains("body schema"), "{err}");

        let mut m = manifest(2);
        m.commands[1].routing_key = "wide.c0".to_owned();
        let err = validate_manifest(m).map(|_| ()).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }
}
