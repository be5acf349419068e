//! Test handler (domain `legacy012`) built against the host's frozen copy
//! of the `parallel-you:handler@0.1.2` contract (`host/wit/0.1.2`), the
//! last whose manifest has no `indexes`, without the SDK: the host speaks
//! 0.1.3 and must still load and run it. `legacy012.ping` writes a
//! document, lists the collection sorted by a field (0.1.2's `$sort`) and
//! returns `legacy012.pong` with the version and how many it listed.

wit_bindgen::generate!({
    path: "../../../host/wit/0.1.2",
    world: "handler",
});

use exports::parallel_you::handler::command_handler::Guest;
use parallel_you::handler::store;
use parallel_you::handler::types::{Command, CommandInfo, Event, HandlerError, Manifest};

struct Legacy;

impl Guest for Legacy {
    fn manifest() -> Manifest {
        Manifest {
            domain: "legacy012".to_owned(),
            version: "0.1.2".to_owned(),
            commands: vec![CommandInfo {
                routing_key: "legacy012.ping".to_owned(),
                summary: "Write, list and answer".to_owned(),
                body_schema: None,
            }],
            events: vec!["legacy012.pong".to_owned()],
        }
    }

    fn handle(cmd: Command) -> Result<Vec<Event>, HandlerError> {
        let failed = |message: String| HandlerError {
            code: "store".to_owned(),
            message,
            context: None,
        };
        let version = store::upsert("pings", &cmd.meta.message_id, "{\"n\":1}", None)
            .map_err(|e| failed(format!("{e:?}")))?;
        let listed = store::list("pings", "{\"$sort\":{\"n\":-1},\"$limit\":10}")
            .map_err(|e| failed(format!("{e:?}")))?;
        Ok(vec![Event {
            routing_key: "legacy012.pong".to_owned(),
            body: format!("{{\"version\":{version},\"listed\":{}}}", listed.len()),
        }])
    }
}

export!(Legacy);
