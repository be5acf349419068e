//! Test handler claiming the `counter` domain, which the bundled `counter`
//! handler already owns: the host must refuse to load it next to that one.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

struct Twin;

impl Handler for Twin {
    fn router() -> Router {
        Router::new("counter", env!("CARGO_PKG_VERSION"))
            .command("counter.twin", "Answer `counter.twinned`", twin)
            .emits(&["counter.twinned"])
    }
}

export_handler!(Twin);

fn twin(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("counter.twinned", "{}")])
}
