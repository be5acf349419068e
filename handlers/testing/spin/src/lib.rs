//! Test handler (domain `spin`): `spin.forever` never returns (a busy loop
//! the optimiser cannot remove); `spin.ok` answers `spin.fine`.

use std::hint::black_box;

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

struct Spin;

impl Handler for Spin {
    fn router() -> Router {
        Router::new("spin", env!("CARGO_PKG_VERSION"))
            .command("spin.forever", "Loop forever", forever)
            .command("spin.ok", "Answer `spin.fine`", ok)
            .emits(&["spin.fine"])
    }
}

export_handler!(Spin);

fn forever(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn ok(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("spin.fine", "{}")])
}
