//! Test handler (domain `trap`): `trap.panic` panics, which traps the wasm
//! instance; `trap.ok` answers `trap.fine`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

struct Trap;

impl Handler for Trap {
    fn router() -> Router {
        Router::new("trap", env!("CARGO_PKG_VERSION"))
            .command("trap.panic", "Panic (the instance traps)", panic)
            .command("trap.ok", "Answer `trap.fine`", ok)
            .emits(&["trap.fine"])
    }
}

export_handler!(Trap);

fn panic(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    panic!("trap.panic was asked to panic")
}

fn ok(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("trap.fine", "{}")])
}
