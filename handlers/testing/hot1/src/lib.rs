//! Test handler (domain `hot`), version 1; `hot2` is version 2 of the same
//! domain. The hot-loading tests swap one for the other in a watched folder.
//!
//! * `hot.version` answers `hot.versioned {version: "1"}`.
//! * `hot.old` (only in version 1) answers `hot.versioned {version: "1"}`:
//!   a key version 2 drops.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde_json::{json, Value};

struct Hot;

impl Handler for Hot {
    fn router() -> Router {
        Router::new("hot", "1.0.0")
            .command("hot.version", "Answer with the handler's version", version)
            .command("hot.old", "A key only version 1 serves", version)
            .emits(&["hot.versioned"])
    }
}

export_handler!(Hot);

fn version(_ctx: &Ctx, _body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new(
        "hot.versioned",
        &json!({ "version": "1" }),
    )?])
}
