//! Test handler (domain `wide`): its manifest declares 1,001 commands
//! (`wide.c0` … `wide.c1000`), one past the host's limit, so the host must
//! refuse it at load time without stalling.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;

/// Commands declared: the host's limit (1,000) plus one.
const COMMANDS: usize = 1_001;

struct Wide;

impl Handler for Wide {
    fn router() -> Router {
        let mut router = Router::new("wide", env!("CARGO_PKG_VERSION"));
        for i in 0..COMMANDS {
            // The router wants static keys; the manifest is built once per
            // instance, so leaking them costs a few kilobytes.
            let key: &'static str = format!("wide.c{i}").leak();
            router = router.command(key, "Answer `wide.done`", done);
        }
        router.emits(&["wide.done"])
    }
}

export_handler!(Wide);

fn done(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("wide.done", "{}")])
}
