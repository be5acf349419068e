//! Test handler (domain `legacy013`) built against the host's frozen copy
//! of the `parallel-you:handler@0.1.3` contract (`host/wit/0.1.3`), the
//! last whose `meta` has no `user-id` and whose `command-info` has no
//! `internal`, without the SDK: the host speaks 0.1.4 and must still load
//! and run it. `legacy013.ping` writes a document (into an index it
//! declares, which 0.1.2 could not) and answers `legacy013.pong` with the
//! version and the session it saw.

wit_bindgen::generate!({
    path: "../../../host/wit/0.1.3",
    world: "handler",
});

use exports::parallel_you::handler::command_handler::Guest;
use parallel_you::handler::store;
use parallel_you::handler::types::{
    Command, CommandInfo, Event, HandlerError, IndexInfo, Manifest,
};

struct Legacy;

impl Guest for Legacy {
    fn manifest() -> Manifest {
        Manifest {
            domain: "legacy013".to_owned(),
            version: "0.1.3".to_owned(),
            commands: vec![CommandInfo {
                routing_key: "legacy013.ping".to_owned(),
                summary: "Write and answer".to_owned(),
                body_schema: None,
            }],
            events: vec!["legacy013.pong".to_owned()],
            indexes: vec![IndexInfo {
                collection: "pings".to_owned(),
                fields: vec!["n".to_owned()],
            }],
        }
    }

    fn handle(cmd: Command) -> Result<Vec<Event>, HandlerError> {
        let version =
            store::upsert("pings", &cmd.meta.message_id, "{\"n\":1}", None).map_err(|e| {
                HandlerError {
                    code: "store".to_owned(),
                    message: format!("{e:?}"),
                    context: None,
                }
            })?;
        let session = cmd.meta.session_id.unwrap_or_default();
        Ok(vec![Event {
            routing_key: "legacy013.pong".to_owned(),
            body: format!("{{\"version\":{version},\"session\":{session:?}}}"),
        }])
    }
}

export!(Legacy);
