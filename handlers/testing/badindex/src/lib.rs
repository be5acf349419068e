//! Test handler (domain `badindex`) whose manifest declares a valid index
//! and one without fields: the host must refuse to load it, with an error
//! naming the declaration, and go on serving the others.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};

struct BadIndex;

impl Handler for BadIndex {
    fn router() -> Router {
        Router::new("badindex", env!("CARGO_PKG_VERSION"))
            .command("badindex.ping", "Never runs: the load fails", ping)
            .index("things", &["colour"])
            .index("things", &[])
    }
}

fn ping(_ctx: &Ctx, _body: serde_json::Value) -> Result<Vec<Event>, Error> {
    Ok(Vec::new())
}

export_handler!(BadIndex);
