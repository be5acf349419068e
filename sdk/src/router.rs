//! The router: a handler's manifest, and commands dispatched by routing
//! key to typed functions.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::{Command, CommandInfo, Ctx, Error, Event, HandlerError, IndexInfo, Manifest};

type CommandFn = Box<dyn Fn(&Ctx, &str) -> Result<Vec<Event>, Error>>;

struct Route {
    key: &'static str,
    summary: &'static str,
    schema: Option<&'static str>,
    internal: bool,
    run: CommandFn,
}

/// A handler's domain, version, commands, events and indexes.
///
/// ```
/// use parallel_you_sdk::{Ctx, Error, Event, Router};
///
/// fn ping(_ctx: &Ctx, body: serde_json::Value) -> Result<Vec<Event>, Error> {
///     Ok(vec![Event::new("demo.ponged", &body)?])
/// }
///
/// let router = Router::new("demo", "1.0.0")
///     .command("demo.ping", "Echo the body", ping)
///     .schema(r#"{"type": "object"}"#)
///     .emits(&["demo.ponged"])
///     .index("pings", &["from", "at"]);
/// let manifest = router.manifest();
/// assert_eq!(manifest.commands[0].routing_key, "demo.ping");
/// assert_eq!(manifest.indexes[0].fields, ["from", "at"]);
/// ```
pub struct Router {
    domain: &'static str,
    version: &'static str,
    routes: Vec<Route>,
    events: Vec<&'static str>,
    indexes: Vec<(&'static str, Vec<&'static str>)>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("domain", &self.domain)
            .field("version", &self.version)
            .field(
                "commands",
                &self.routes.iter().map(|r| r.key).collect::<Vec<_>>(),
            )
            .field("events", &self.events)
            .field("indexes", &self.indexes)
            .finish()
    }
}

impl Router {
    /// A router for `domain` (the first segment of every routing key the
    /// handler claims) at the handler's `version`.
    pub fn new(domain: &'static str, version: &'static str) -> Self {
        Self {
            domain,
            version,
            routes: Vec::new(),
            events: Vec::new(),
            indexes: Vec::new(),
        }
    }

    /// Adds a command: its full routing key (`<domain>.<name>…`), a
    /// one-line summary, and the function that handles it.
    ///
    /// The command's JSON body is deserialised into `B` first (an empty body
    /// counts as `{}`); if that fails the command is refused with code
    /// `validation` and serde's message.
    #[must_use]
    pub fn command<B, F>(mut self, routing_key: &'static str, summary: &'static str, f: F) -> Self
    where
        B: DeserializeOwned,
        F: Fn(&Ctx, B) -> Result<Vec<Event>, Error> + 'static,
    {
        self.routes.push(Route {
            key: routing_key,
            summary,
            schema: None,
            internal: false,
            run: Box::new(move |ctx, body| f(ctx, parse_body(body)?)),
        });
        self
    }

    /// Sets the JSON Schema (JSON text) of the last added command's body,
    /// published in the manifest. The host checks bodies against it before
    /// the component runs (a schema outside the subset in
    /// `parallel-you-core`'s `schema` module fails the load); the typed body
    /// is checked here as well. Does nothing before the first command.
    #[must_use]
    pub fn schema(mut self, json_schema: &'static str) -> Self {
        if let Some(route) = self.routes.last_mut() {
            route.schema = Some(json_schema);
        }
        self
    }

    /// Marks the last added command internal: sent only by this
    /// component's own timers ([`Ctx::schedule`](crate::Ctx::schedule)).
    /// The gateway refuses it from clients and leaves it out of `/api`;
    /// the host refuses it from anyone but a timer of this domain. Does
    /// nothing before the first command.
    #[must_use]
    pub fn internal(mut self) -> Self {
        if let Some(route) = self.routes.last_mut() {
            route.internal = true;
        }
        self
    }

    /// Declares routing keys of events the handler may publish
    /// (documentation only).
    #[must_use]
    pub fn emits(mut self, events: &[&'static str]) -> Self {
        self.events.extend_from_slice(events);
        self
    }

    /// Asks the store to index `fields` (in this order; `a.b` reaches into
    /// nested objects) of the documents of `collection`, for the `list`
    /// filters and sorts the commands run on them. The host creates the
    /// index when it loads the component; an index never changes what
    /// `list` returns, only how fast (see the store's `list`).
    #[must_use]
    pub fn index(mut self, collection: &'static str, fields: &[&'static str]) -> Self {
        self.indexes.push((collection, fields.to_vec()));
        self
    }

    /// The domain.
    pub fn domain(&self) -> &'static str {
        self.domain
    }

    /// The manifest the component reports to the host.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            domain: self.domain.to_owned(),
            version: self.version.to_owned(),
            commands: self
                .routes
                .iter()
                .map(|r| CommandInfo {
                    routing_key: r.key.to_owned(),
                    summary: r.summary.to_owned(),
                    body_schema: r.schema.map(str::to_owned),
                    internal: r.internal,
                })
                .collect(),
            events: self.events.iter().map(|e| (*e).to_owned()).collect(),
            indexes: self
                .indexes
                .iter()
                .map(|(collection, fields)| IndexInfo {
                    collection: (*collection).to_owned(),
                    fields: fields.iter().map(|f| (*f).to_owned()).collect(),
                })
                .collect(),
        }
    }

    /// Runs the command registered under `ctx.routing_key()` with this JSON
    /// body. An unknown key fails with code `unknown_routing_key`.
    pub fn dispatch(&self, ctx: &Ctx, body: &str) -> Result<Vec<Event>, Error> {
        let key = ctx.routing_key();
        match self.routes.iter().find(|r| r.key == key) {
            Some(route) => (route.run)(ctx, body),
            None => Err(Error::new(
                "unknown_routing_key",
                format!("the `{}` handler has no command `{key}`", self.domain),
            )
            .with_context(serde_json::json!({
                "routing_key": key,
                "commands": self.routes.iter().map(|r| r.key).collect::<Vec<_>>(),
            }))),
        }
    }

    /// Handles a command as the component export does.
    pub fn handle(&self, cmd: Command) -> Result<Vec<Event>, HandlerError> {
        let ctx = Ctx::new(cmd.meta);
        self.dispatch(&ctx, &cmd.body).map_err(HandlerError::from)
    }
}

fn parse_body<B: DeserializeOwned>(body: &str) -> Result<B, Error> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(body).map_err(|e| Error::validation(format!("invalid body: {e}")))
}
