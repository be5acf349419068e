//! The commands the gateway serves, discovered from the bus bindings.
//!
//! The bindings are the API: a routing key bound on the bus is a route,
//! `thread.saga.create` → `POST /api/thread/saga/create`. When the gateway
//! runs next to a host, the handlers' manifests add summaries and body
//! schemas. The catalog refreshes periodically and whenever a request
//! misses, so handlers that appear or disappear change the API without a
//! restart.
//!
//! Commands a manifest marks internal (sent only by their handler's
//! timers) are left out of the listing, and remembered so a client's
//! attempt can be refused by name. A gateway without a host in its
//! process reads that, and the summaries and schemas, from the bindings
//! themselves: a host binds each command with what its manifest says
//! ([`parallel_you_core::bus::Binding::info`]).
//!
//! Queries likewise: from the host's reactors when one runs in this
//! process, else from the bus's query bindings (on RabbitMQ, each bound
//! with its summary and params schema), read at the same refreshes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parallel_you_core::bus::{Binding, QueryRoute};
use parallel_you_core::{Bus, HostInfo};
use parking_lot::RwLock;
use serde::Serialize;

/// One command the API serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandEntry {
    /// The routing key, e.g. `thread.saga.create`.
    pub routing_key: String,
    /// Always `POST`.
    pub method: &'static str,
    /// The HTTP path, e.g. `/api/thread/saga/create`.
    pub path: String,
    /// One line from the handler's manifest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The body's JSON Schema from the handler's manifest, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_schema: Option<serde_json::Value>,
}

/// The HTTP path of a routing key.
pub fn path_of(routing_key: &str) -> String {
    format!("/api/{}", routing_key.replace('.', "/"))
}

/// The routing key of an `/api/…` path's tail (`thread/saga/create`).
pub fn routing_key_of(tail: &str) -> String {
    tail.trim_matches('/').replace('/', ".")
}

/// The current command list.
pub(crate) struct Catalog {
    bus: Arc<dyn Bus>,
    host: Option<Arc<dyn HostInfo>>,
    listing: RwLock<Listing>,
}

/// The entries of one refresh, and where each routing key is among them:
/// a lookup per request must not scan a thousand entries.
#[derive(Default)]
struct Listing {
    entries: Arc<Vec<CommandEntry>>,
    by_key: HashMap<String, usize>,
    /// The bindings it was built from, in the bus's order.
    bindings: Vec<Binding>,
    /// The queries the bus binds (none when a host runs in this process:
    /// its reactors are read directly).
    queries: Arc<Vec<QueryRoute>>,
    /// Bound routing keys a manifest marks internal: not in `entries`.
    internal: HashSet<String>,
}

impl Listing {
    fn new(entries: Vec<CommandEntry>) -> Self {
        let by_key = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.routing_key.clone(), i))
            .collect();
        Listing {
            entries: Arc::new(entries),
            by_key,
            bindings: Vec::new(),
            queries: Arc::default(),
            internal: HashSet::new(),
        }
    }
}

impl Catalog {
    pub(crate) fn new(bus: Arc<dyn Bus>, host: Option<Arc<dyn HostInfo>>) -> Self {
        Catalog {
            bus,
            host,
            listing: RwLock::new(Listing::default()),
        }
    }

    /// The commands as of the last refresh.
    pub(crate) fn entries(&self) -> Arc<Vec<CommandEntry>> {
        self.listing.read().entries.clone()
    }

    /// The queries the bus binds, as of the last refresh.
    pub(crate) fn queries(&self) -> Arc<Vec<QueryRoute>> {
        self.listing.read().queries.clone()
    }

    /// The entry of a routing key, as of the last refresh.
    pub(crate) fn find(&self, routing_key: &str) -> Option<CommandEntry> {
        let listing = self.listing.read();
        let i = *listing.by_key.get(routing_key)?;
        listing.entries.get(i).cloned()
    }

    /// Whether a manifest marks `routing_key` internal.
    pub(crate) fn is_internal(&self, routing_key: &str) -> bool {
        self.listing.read().internal.contains(routing_key)
    }

    /// Reads the bindings again and rebuilds the list if they changed
    /// (the periodic check: unchanged bindings cost one comparison). On a
    /// bus error the last list stays.
    pub(crate) async fn refresh(&self) {
        self.read(false).await;
    }

    /// Rebuilds the list from the bindings and the host's manifests, even
    /// if the keys are the same: a handler was loaded again, and its
    /// summaries or schemas may have changed.
    pub(crate) async fn reload(&self) {
        self.read(true).await;
    }

    async fn read(&self, always: bool) {
        let bindings = match self.bus.bindings().await {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the bus bindings");
                return;
            }
        };
        let queries = if self.host.is_some() {
            Vec::new()
        } else {
            match self.bus.query_routes().await {
                Ok(q) => q,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the bus's query bindings");
                    self.listing.read().queries.to_vec()
                }
            }
        };
        if !always {
            let listing = self.listing.read();
            if listing.bindings == bindings && *listing.queries == queries {
                return;
            }
        }
        let mut internal = HashSet::new();
        let entries: Vec<CommandEntry> = bindings
            .iter()
            .filter_map(|b| {
                // The host beside us knows its manifests as they are now;
                // the bindings, what each host bound.
                let info = self
                    .host
                    .as_ref()
                    .and_then(|h| h.command(&b.routing_key))
                    .or_else(|| b.info.clone());
                if info.as_ref().is_some_and(|i| i.internal) {
                    internal.insert(b.routing_key.clone());
                    return None;
                }
                Some(CommandEntry {
                    path: path_of(&b.routing_key),
                    method: "POST",
                    summary: info.as_ref().map(|i| i.summary.clone()),
                    body_schema: info.and_then(|i| i.body_schema),
                    routing_key: b.routing_key.clone(),
                })
            })
            .collect();
        let mut listing = Listing::new(entries);
        // Compared with the bindings at the next refresh: all of them.
        listing.bindings = bindings;
        listing.queries = Arc::new(queries);
        listing.internal = internal;
        *self.listing.write() = listing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_keys() {
        assert_eq!(path_of("thread.saga.create"), "/api/thread/saga/create");
        assert_eq!(routing_key_of("thread/saga/create"), "thread.saga.create");
        assert_eq!(routing_key_of("/counter/get/"), "counter.get");
    }
}
