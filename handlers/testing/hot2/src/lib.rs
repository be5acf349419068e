//! Test handler (domain `hot`), version 2 of `hot1`.
//!
//! * `hot.version` answers `hot.versioned {version: "2"}`.
//! * `hot.new` (only in version 2) answers the same: a key version 2 adds.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde_json::{json, Value};

struct Hot;

impl Handler for Hot {
    fn router() -> Router {
        Router::new("hot", "2.0.0")
            .command("hot.version", "Answer with the handler's version", version)
            .command("hot.new", "A key only version 2 serves", version)
            .emits(&["hot.versioned"])
    }
}

export_handler!(Hot);

fn version(_ctx: &Ctx, _body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new(
        "hot.versioned",
        &json!({ "version": "2" }),
    )?])
}
