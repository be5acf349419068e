//! The reactor side: a reactor's manifest, events dispatched by topic
//! pattern to typed functions, and queries dispatched by name.

mod delivered;
mod export;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use delivered::Delivered;
pub use export::{EventReactor, ReactorExport};

use crate::ctx::{QueryCtx, ReactorCtx};
use crate::{
    topic_matches, CommandToSend, DeliveredEvent, Error, HandlerError, IndexInfo, QueryInfo,
    ReactorManifest,
};

type EventFn = Box<dyn Fn(&ReactorCtx, &str) -> Result<Vec<CommandToSend>, Error>>;
type QueryFn = Box<dyn Fn(&QueryCtx, &str) -> Result<String, Error>>;

struct EventRoute {
    pattern: &'static str,
    /// False for a timer's key: delivered to this reactor whatever it
    /// subscribes to, so not listed in the manifest's `subscribes`.
    subscribed: bool,
    run: EventFn,
}

struct QueryRoute {
    name: &'static str,
    summary: &'static str,
    schema: Option<&'static str>,
    run: QueryFn,
}

/// A reactor's domain, version, subscriptions, queries, indexes and the
/// commands it may send.
///
/// An event goes to the **first registered** function whose pattern
/// matches its routing key (like `match` arms: register the specific
/// patterns before the broad ones). Patterns have AMQP topic semantics
/// ([`topic_matches`]); the host checks their grammar when it loads the
/// component.
///
/// ```
/// use parallel_you_sdk::{CommandToSend, Delivered, Error, QueryCtx, Reactor, ReactorCtx};
/// use serde::Deserialize;
/// use serde_json::{json, Value};
///
/// #[derive(Deserialize)]
/// struct Started {
///     id: String,
/// }
///
/// fn started(_ctx: &ReactorCtx, ev: Delivered<Started>) -> Result<Vec<CommandToSend>, Error> {
///     let at = ev.timestamp_ms();
///     CommandToSend::new("audit.record", &json!({ "id": ev.body.id, "at": at })).map(|c| vec![c])
/// }
///
/// fn other(_ctx: &ReactorCtx, _ev: Delivered<Value>) -> Result<Vec<CommandToSend>, Error> {
///     Ok(vec![])
/// }
///
/// #[derive(Deserialize)]
/// struct ById {
///     id: String,
/// }
///
/// fn by_id(_ctx: &QueryCtx, p: ById) -> Result<Value, Error> {
///     Ok(json!({ "id": p.id }))
/// }
///
/// let reactor = Reactor::new("watch", "1.0.0")
///     .on("thread.started", started)
///     .on("thread.*", other)
///     .query("by_id", "One thread's record", by_id)
///     .schema(r#"{"type": "object", "required": ["id"]}"#)
///     .index("records", &["thread_id"])
///     .sends(&["audit.record"]);
/// let manifest = reactor.manifest();
/// assert_eq!(manifest.subscribes, ["thread.started", "thread.*"]);
/// assert_eq!(manifest.queries[0].name, "by_id");
/// ```
pub struct Reactor {
    domain: &'static str,
    version: &'static str,
    events: Vec<EventRoute>,
    queries: Vec<QueryRoute>,
    indexes: Vec<(&'static str, Vec<&'static str>)>,
    sends: Vec<&'static str>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("domain", &self.domain)
            .field("version", &self.version)
            .field(
                "events",
                &self.events.iter().map(|r| r.pattern).collect::<Vec<_>>(),
            )
            .field(
                "queries",
                &self.queries.iter().map(|q| q.name).collect::<Vec<_>>(),
            )
            .field("sends", &self.sends)
            .finish()
    }
}

impl Reactor {
    /// A reactor owning `domain` (its store, queries and timers) at the
    /// reactor's `version`.
    pub fn new(domain: &'static str, version: &'static str) -> Self {
        Self {
            domain,
            version,
            events: Vec::new(),
            queries: Vec::new(),
            indexes: Vec::new(),
            sends: Vec::new(),
        }
    }

    /// Subscribes to events whose routing key matches `pattern` (`*` one
    /// segment, `#` zero or more) and handles them with `f`.
    ///
    /// The body is deserialised into `B` first (an empty body counts as
    /// `{}`); if that fails the event fails with code `validation`, and so
    /// is retried and then dead-lettered: take `serde_json::Value` or
    /// make fields optional where publishers may differ.
    #[must_use]
    pub fn on<B, F>(mut self, pattern: &'static str, f: F) -> Self
    where
        B: DeserializeOwned,
        F: Fn(&ReactorCtx, Delivered<B>) -> Result<Vec<CommandToSend>, Error> + 'static,
    {
        self.events.push(EventRoute {
            pattern,
            subscribed: true,
            run: event_fn(f),
        });
        self
    }

    /// Handles the timer events with routing key `key` (of this reactor's
    /// own domain, as given to [`Ctx::schedule`](crate::Ctx::schedule)).
    /// Timers reach only the reactor that set them, so `key` is not a
    /// subscription.
    #[must_use]
    pub fn on_timer<B, F>(mut self, key: &'static str, f: F) -> Self
    where
        B: DeserializeOwned,
        F: Fn(&ReactorCtx, Delivered<B>) -> Result<Vec<CommandToSend>, Error> + 'static,
    {
        self.events.push(EventRoute {
            pattern: key,
            subscribed: false,
            run: event_fn(f),
        });
        self
    }

    /// Adds a query, served at `/api/query/<domain>/<name>`: its name
    /// (`[a-z0-9_-]`), a one-line summary, and the function answering it.
    ///
    /// The parameters object is deserialised into `P` first; if that fails
    /// the query answers code `validation` (HTTP 400). The function's
    /// result is the JSON answer.
    #[must_use]
    pub fn query<P, R, F>(mut self, name: &'static str, summary: &'static str, f: F) -> Self
    where
        P: DeserializeOwned,
        R: Serialize,
        F: Fn(&QueryCtx, P) -> Result<R, Error> + 'static,
    {
        self.queries.push(QueryRoute {
            name,
            summary,
            schema: None,
            run: Box::new(move |ctx, params| {
                let params = parse_json(params, "params")?;
                Ok(serde_json::to_string(&f(ctx, params)?)?)
            }),
        });
        self
    }

    /// Sets the JSON Schema (JSON text) of the last added query's
    /// parameters, published in the manifest and the API listing. Does
    /// nothing before the first query.
    #[must_use]
    pub fn schema(mut self, json_schema: &'static str) -> Self {
        if let Some(query) = self.queries.last_mut() {
            query.schema = Some(json_schema);
        }
        self
    }

    /// Asks the store to index `fields` (in this order) of the documents
    /// of `collection`, for the queries that filter or sort on them.
    #[must_use]
    pub fn index(mut self, collection: &'static str, fields: &[&'static str]) -> Self {
        self.indexes.push((collection, fields.to_vec()));
        self
    }

    /// Declares routing keys of commands the reactor may send: the host
    /// fails an event that returns any other.
    #[must_use]
    pub fn sends(mut self, commands: &[&'static str]) -> Self {
        self.sends.extend_from_slice(commands);
        self
    }

    /// The domain.
    pub fn domain(&self) -> &'static str {
        self.domain
    }

    /// The manifest the component reports to the host.
    pub fn manifest(&self) -> ReactorManifest {
        ReactorManifest {
            domain: self.domain.to_owned(),
            version: self.version.to_owned(),
            subscribes: self
                .events
                .iter()
                .filter(|r| r.subscribed)
                .map(|r| r.pattern.to_owned())
                .collect(),
            sends: self.sends.iter().map(|s| (*s).to_owned()).collect(),
            queries: self
                .queries
                .iter()
                .map(|q| QueryInfo {
                    name: q.name.to_owned(),
                    summary: q.summary.to_owned(),
                    params_schema: q.schema.map(str::to_owned),
                })
                .collect(),
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

    /// Runs the first registered function whose pattern matches
    /// `ctx.routing_key()` on this JSON body. A key none matches (which the
    /// host does not deliver, except a timer without
    /// [`on_timer`](Reactor::on_timer)) fails with code
    /// `unknown_routing_key`.
    pub fn dispatch(&self, ctx: &ReactorCtx, body: &str) -> Result<Vec<CommandToSend>, Error> {
        let key = ctx.routing_key();
        match self.events.iter().find(|r| topic_matches(r.pattern, key)) {
            Some(route) => (route.run)(ctx, body),
            None => Err(Error::new(
                "unknown_routing_key",
                format!("the `{}` reactor has no function for `{key}`", self.domain),
            )
            .with_context(serde_json::json!({
                "routing_key": key,
                "patterns": self.events.iter().map(|r| r.pattern).collect::<Vec<_>>(),
            }))),
        }
    }

    /// Reacts to an event as the component export does.
    pub fn on_event(&self, event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        let ctx = ReactorCtx::for_event(event.meta);
        self.dispatch(&ctx, &event.body).map_err(HandlerError::from)
    }

    /// Answers the query `name` with `params` (a JSON object as text) as
    /// JSON text. An unknown name fails with code `not_found` (HTTP 404).
    pub fn answer(&self, name: &str, params: &str) -> Result<String, Error> {
        match self.queries.iter().find(|q| q.name == name) {
            Some(query) => (query.run)(&QueryCtx::for_query(), params),
            None => Err(Error::not_found(format!(
                "the `{}` reactor has no query `{name}`",
                self.domain
            ))
            .with_context(serde_json::json!({
                "query": name,
                "queries": self.queries.iter().map(|q| q.name).collect::<Vec<_>>(),
            }))),
        }
    }
}

fn event_fn<B, F>(f: F) -> EventFn
where
    B: DeserializeOwned,
    F: Fn(&ReactorCtx, Delivered<B>) -> Result<Vec<CommandToSend>, Error> + 'static,
{
    Box::new(move |ctx, body| {
        let body = parse_json(body, "event body")?;
        f(
            ctx,
            Delivered {
                meta: ctx.meta().clone(),
                body,
            },
        )
    })
}

/// `text` as a `T`; empty text counts as `{}`. A mismatch is a
/// `validation` error naming `what`.
pub(crate) fn parse_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|e| Error::validation(format!("invalid {what}: {e}")))
}

#[cfg(test)]
mod tests;
