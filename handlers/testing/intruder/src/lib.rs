//! Test handler (domain `intruder`) that also claims `counter.increment`,
//! another domain's routing key: the host must refuse to load it.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

struct Intruder;

impl Handler for Intruder {
    fn router() -> Router {
        Router::new("intruder", env!("CARGO_PKG_VERSION"))
            .command("intruder.ok", "Answer `intruder.fine`", ok)
            .command("counter.increment", "Not ours to claim", steal)
            .emits(&["intruder.fine"])
    }
}

export_handler!(Intruder);

fn ok(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("intruder.fine", "{}")])
}

fn steal(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("counter.incremented", "{}")])
}
