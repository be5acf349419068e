//! Test handler (domain `hog`): `hog.eat` allocates 1 MiB after 1 MiB,
//! touching every page, until the host's memory limit stops it (the
//! allocation fails and the instance traps); `hog.ok` answers `hog.fine`.

use std::hint::black_box;

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

const MIB: usize = 1 << 20;

struct Hog;

impl Handler for Hog {
    fn router() -> Router {
        Router::new("hog", env!("CARGO_PKG_VERSION"))
            .command("hog.eat", "Allocate memory without bound", eat)
            .command("hog.ok", "Answer `hog.fine`", ok)
            .emits(&["hog.fine"])
    }
}

export_handler!(Hog);

fn eat(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Non-zero so that every page is written, not just reserved.
        let chunk = black_box(vec![0xA5_u8; MIB]);
        hoard.push(chunk);
        black_box(&mut hoard);
    }
}

fn ok(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("hog.fine", "{}")])
}
