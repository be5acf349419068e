//! What a handler declares about itself, and the checks it must pass.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::bindings;
use parallel_you_core::host_info::{CommandInfo, QueryInfo, ReactorInfo};
use parallel_you_core::names::{
    check_domain, check_event_pattern, check_routing_key, domain_of, error_key, is_key_segment,
};
use parallel_you_core::store::index_paths;

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
    /// What a reactor declares (its subscriptions, sends and queries);
    /// `None` for a command handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reactor: Option<ReactorInfo>,
    /// The indexes it asks its store to keep, checked and without
    /// duplicates; the host ensures them before the component serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexInfo>,
}

/// An index a component declares: on `fields` (in order) of the documents
/// of its domain's `collection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    /// The collection, a name as [`parallel_you_core::names::check_collection`] accepts.
    pub collection: String,
    /// 1 to [`parallel_you_core::store::MAX_INDEX_FIELDS`] field paths (`a.b`).
    pub fields: Vec<String>,
}

impl Manifest {
    /// `handler` or `reactor`.
    pub fn kind(&self) -> &'static str {
        if self.reactor.is_some() {
            "reactor"
        } else {
            "handler"
        }
    }

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

/// Most patterns one reactor may subscribe to.
pub(crate) const MAX_PATTERNS: usize = 100;
/// Most queries one reactor may declare.
pub(crate) const MAX_QUERIES: usize = 100;
/// Longest query name, in bytes.
pub(crate) const MAX_QUERY_NAME: usize = 64;
/// Most indexes one component may declare: each costs its store space and
/// every write to the collection time.
pub(crate) const MAX_INDEXES: usize = 32;

/// A manifest's index declarations, checked: at most [`MAX_INDEXES`], each
/// a valid collection with 1 to 4 fields of the filter's path grammar (the
/// store's own rule), none declared twice.
fn check_indexes(declared: Vec<(String, Vec<String>)>) -> Result<Vec<IndexInfo>, String> {
    if declared.len() > MAX_INDEXES {
        return Err(format!(
            "its manifest declares {} indexes, more than the limit of {MAX_INDEXES}",
            declared.len()
        ));
    }
    let mut seen = BTreeSet::new();
    let mut indexes = Vec::with_capacity(declared.len());
    for (collection, fields) in declared {
        index_paths(&collection, &fields).map_err(|e| format!("its manifest: {e}"))?;
        if !seen.insert((collection.clone(), fields.clone())) {
            return Err(format!(
                "it declares the index of {collection:?} on {fields:?} twice"
            ));
        }
        indexes.push(IndexInfo { collection, fields });
    }
    Ok(indexes)
}

/// A reactor's manifest, checked like a handler's: its domain, each
/// pattern (AMQP topic syntax over routing keys), each command it sends
/// (a valid routing key of another domain), each query (a unique name of
/// `[a-z0-9_-]`, a bounded summary and JSON schema), every list bounded.
pub(super) fn validate_reactor_manifest(
    m: bindings::reactor::parallel_you::handler::reactor_types::ReactorManifest,
) -> Result<Manifest, String> {
    check_domain(&m.domain).map_err(|e| e.0)?;
    if m.version.trim().is_empty() {
        return Err("its manifest has an empty version".to_owned());
    }
    if m.subscribes.is_empty() {
        return Err("its manifest subscribes to no events".to_owned());
    }
    for (what, n, max) in [
        ("patterns", m.subscribes.len(), MAX_PATTERNS),
        ("sent commands", m.sends.len(), MAX_COMMANDS),
        ("queries", m.queries.len(), MAX_QUERIES),
    ] {
        if n > max {
            return Err(format!(
                "its manifest declares {n} {what}, more than the limit of {max}"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for p in &m.subscribes {
        check_event_pattern(p).map_err(|e| format!("its manifest: {e}"))?;
        if !seen.insert(p.as_str()) {
            return Err(format!("it subscribes to {p:?} twice"));
        }
    }
    let mut seen = BTreeSet::new();
    for key in &m.sends {
        check_routing_key(key).map_err(|e| format!("its manifest: {e}"))?;
        if domain_of(key) == m.domain {
            return Err(format!(
                "it sends {key:?}, of its own domain {:?}: a reactor's domain has no commands",
                m.domain
            ));
        }
        if !seen.insert(key.as_str()) {
            return Err(format!("it declares sending {key:?} twice"));
        }
    }
    let indexes = check_indexes(
        m.indexes
            .into_iter()
            .map(|i| (i.collection, i.fields))
            .collect(),
    )?;
    let mut queries = Vec::with_capacity(m.queries.len());
    let mut seen = BTreeSet::new();
    for q in m.queries {
        if q.name.len() > MAX_QUERY_NAME || !is_key_segment(&q.name) {
            return Err(format!(
                "query name {:?} must be 1 to {MAX_QUERY_NAME} characters of [a-z0-9_-]",
                q.name
            ));
        }
        if !seen.insert(q.name.clone()) {
            return Err(format!("it declares query {:?} twice", q.name));
        }
        if q.summary.len() > MAX_SUMMARY {
            return Err(format!(
                "the summary of query {:?} is {} bytes, more than the limit of {MAX_SUMMARY}",
                q.name,
                q.summary.len()
            ));
        }
        if let Some(schema) = q
            .params_schema
            .as_ref()
            .filter(|s| s.len() > MAX_BODY_SCHEMA)
        {
            return Err(format!(
                "the params schema of query {:?} is {} bytes, more than the limit of {MAX_BODY_SCHEMA}",
                q.name,
                schema.len()
            ));
        }
        let params_schema = q
            .params_schema
            .map(|s| {
                serde_json::from_str(&s).map_err(|e| {
                    format!("the params schema of query {:?} is not JSON: {e}", q.name)
                })
            })
            .transpose()?;
        queries.push(QueryInfo {
            name: q.name,
            summary: q.summary,
            params_schema,
        });
    }
    Ok(Manifest {
        domain: m.domain,
        version: m.version,
        commands: Vec::new(),
        events: Vec::new(),
        reactor: Some(ReactorInfo {
            subscribes: m.subscribes,
            sends: m.sends,
            queries,
        }),
        indexes,
    })
}

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
    let indexes = check_indexes(
        m.indexes
            .into_iter()
            .map(|i| (i.collection, i.fields))
            .collect(),
    )?;
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
            internal: c.internal,
        });
    }
    Ok(Manifest {
        domain: m.domain,
        version: m.version,
        commands,
        events: m.events,
        reactor: None,
        indexes,
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
                    internal: false,
                })
                .collect(),
            events: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn reactor(
        domain: &str,
        subscribes: &[&str],
        sends: &[&str],
        queries: &[&str],
    ) -> bindings::reactor::parallel_you::handler::reactor_types::ReactorManifest {
        use bindings::reactor::parallel_you::handler::reactor_types as rt;
        rt::ReactorManifest {
            domain: domain.to_owned(),
            version: "1".to_owned(),
            subscribes: subscribes.iter().map(|s| (*s).to_owned()).collect(),
            sends: sends.iter().map(|s| (*s).to_owned()).collect(),
            queries: queries
                .iter()
                .map(|q| rt::QueryInfo {
                    name: (*q).to_owned(),
                    summary: String::new(),
                    params_schema: None,
                })
                .collect(),
            indexes: Vec::new(),
        }
    }

    #[test]
    fn reactor_manifests_are_checked() {
        let ok = validate_reactor_manifest(reactor(
            "effort",
            &["thread.*", "thread.quantum.#"],
            &["thread.park"],
            &["by_day", "by-saga"],
        ));
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.kind(), "reactor");
        assert!(ok.routing_keys().is_empty());
        let refused = [
            (reactor("pyou", &["a.*"], &[], &[]), "reserved"),
            (reactor("session", &["a.*"], &[], &[]), "reserved"),
            (reactor("Effort", &["a.*"], &[], &[]), "[a-z0-9_-]"),
            (reactor("effort", &[], &[], &[]), "no events"),
            (
                reactor("effort", &["thread.Started"], &[], &[]),
                "event pattern",
            ),
            (reactor("effort", &["thread..x"], &[], &[]), "event pattern"),
            (reactor("effort", &["a.*", "a.*"], &[], &[]), "twice"),
            (reactor("effort", &["a.*"], &["thread"], &[]), "routing key"),
            (
                reactor("effort", &["a.*"], &["effort.x"], &[]),
                "own domain",
            ),
            (reactor("effort", &["a.*"], &["a.b", "a.b"], &[]), "twice"),
            (reactor("effort", &["a.*"], &[], &["By_day"]), "query name"),
            (reactor("effort", &["a.*"], &[], &["q", "q"]), "twice"),
        ];
        for (m, why) in refused {
            let shown = format!("{m:?}");
            let err = validate_reactor_manifest(m).map(|_| ()).unwrap_err();
            assert!(err.contains(why), "{shown}: {err}");
        }
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("a.p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = validate_reactor_manifest(reactor("effort", &many, &[], &[]))
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("limit of 100"), "{err}");
        let mut m = reactor("effort", &["a.*"], &[], &["q"]);
        m.queries[0].params_schema = Some("{not json".to_owned());
        let err = validate_reactor_manifest(m).map(|_| ()).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn index_declarations_are_checked_and_bounded() {
        let index = |collection: &str, fields: &[&str]| types::IndexInfo {
            collection: collection.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        };
        let mut m = manifest(1);
        m.indexes = vec![
            index("threads", &["state"]),
            index("threads", &["saga.id", "n"]),
        ];
        let ok = validate_manifest(m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.indexes.len(), 2);
        assert_eq!(ok.indexes[1].fields, ["saga.id", "n"]);
        let refused = [
            (vec![index("threads", &[])], "1 to 4 fields"),
            (
                vec![index("threads", &["a", "b", "c", "d", "e"])],
                "1 to 4 fields",
            ),
            (vec![index("Bad Name", &["a"])], "collection"),
            (vec![index("", &["a"])], "collection"),
            (vec![index("threads", &["a..b"])], "dot-separated"),
            (vec![index("threads", &["$where"])], "dot-separated"),
            (vec![index("t", &["a"]), index("t", &["a"])], "twice"),
            (
                (0..=MAX_INDEXES)
                    .map(|i| index(&format!("c{i}"), &["a"]))
                    .collect(),
                "limit of 32",
            ),
        ];
        for (indexes, why) in refused {
            let mut m = manifest(1);
            m.indexes = indexes;
            let shown = format!("{:?}", m.indexes);
            let err = validate_manifest(m).map(|_| ()).unwrap_err();
            assert!(err.contains(why), "{shown}: {err}");
        }
        let mut r = reactor("effort", &["a.*"], &[], &[]);
        r.indexes = vec![index("days", &[])];
        let err = validate_reactor_manifest(r).map(|_| ()).unwrap_err();
        assert!(err.contains("1 to 4 fields"), "{err}");
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
