//! The `{{name}}` reactor: counts the events it sees, per routing key.
//!
//! | listens to | keeps | query |
//! |---|---|---|
//! | `counter.*` (change `SUBSCRIBES`) | `counts`: one document per routing key | `counts` → `{routing_key: n}` |
//!
//! Build with `pyou build`, try with `pyou query --handlers dist {{name}} counts`.

use std::collections::BTreeMap;

use parallel_you_sdk::{
    export_reactor, CommandToSend, Delivered, Error, EventReactor, QueryCtx, Reactor, ReactorCtx,
};
use serde::{Deserialize, Serialize};

/// The events this reactor hears (`*` one segment, `#` any number).
const SUBSCRIBES: &str = "counter.*";
const COUNTS: &str = "counts";

struct App;

impl EventReactor for App {
    fn reactor() -> Reactor {
        Reactor::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .on(SUBSCRIBES, count)
            .query("counts", "How many events of each routing key were seen", counts)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

fn count(ctx: &ReactorCtx, ev: Delivered<serde_json::Value>) -> Result<Vec<CommandToSend>, Error> {
    let counts = ctx.collection::<Count>(COUNTS);
    let key = ev.routing_key().to_owned();
    let (n, version) = match counts.get(&key)? {
        Some(doc) => (doc.value.n, doc.version),
        None => (0, 0),
    };
    // The host runs each event once in effect: a redelivery changes nothing.
    counts.put(&key, &Count { n: n + 1 }, Some(version))?;
    ctx.debug(format!("{key}: {}", n + 1));
    Ok(vec![])
}

fn counts(ctx: &QueryCtx, _params: serde::de::IgnoredAny) -> Result<BTreeMap<String, u64>, Error> {
    let docs = ctx.collection::<Count>(COUNTS).list(serde_json::json!({ "$limit": 1000 }))?;
    Ok(docs.into_iter().map(|d| (d.id, d.value.n)).collect())
}

export_reactor!(App);
