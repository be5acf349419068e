//! Test reactor `rloud`: each `noop.ponged` is announced as `rloud.heard
//! {i}` through `ReactorCtx::emit`; with `"foreign": true` in the body it
//! also emits `noop.forged`, another domain's event, which fails the event.

use parallel_you_sdk::{
    export_reactor, CommandToSend, Delivered, Error, Event, EventReactor, Reactor, ReactorCtx,
};
use serde_json::{json, Value};

struct Loud;

impl EventReactor for Loud {
    fn reactor() -> Reactor {
        Reactor::new("rloud", env!("CARGO_PKG_VERSION")).on("noop.ponged", heard)
    }
}

fn heard(ctx: &ReactorCtx, ev: Delivered<Value>) -> Result<Vec<CommandToSend>, Error> {
    ctx.emit(Event::new("rloud.heard", &json!({ "i": ev.body["i"] }))?);
    if ev.body["foreign"] == true {
        ctx.emit(Event::new("noop.forged", &json!({}))?);
    }
    Ok(vec![])
}

export_reactor!(Loud);
