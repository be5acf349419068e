//! Test handler (domain `legacy`) built against a frozen copy of the
//! `parallel-you:handler@0.1.0` contract (`wit/` beside this file), without
//! the SDK: the host speaks a later 0.1.x and must still load and run it.
//! `legacy.ping` writes a document, emits `legacy.emitted` and returns
//! `legacy.pong` carrying the document's version.

wit_bindgen::generate!({
    path: "wit",
    world: "handler",
});

use exports::parallel_you::handler::command_handler::Guest;
use parallel_you::handler::types::{Command, CommandInfo, Event, HandlerError, Manifest};
use parallel_you::handler::{emitter, store};

struct Legacy;

impl Guest for Legacy {
    fn manifest() -> Manifest {
        Manifest {
            domain: "legacy".to_owned(),
            version: "0.1.0".to_owned(),
            commands: vec![CommandInfo {
                routing_key: "legacy.ping".to_owned(),
                summary: "Write, emit and answer".to_owned(),
                body_schema: None,
            }],
            events: vec!["legacy.emitted".to_owned(), "legacy.pong".to_owned()],
        }
    }

    fn handle(cmd: Command) -> Result<Vec<Event>, HandlerError> {
        let failed = |message: String| HandlerError {
            code: "store".to_owned(),
            message,
            context: None,
        };
        let version = store::upsert("pings", "last", &cmd.body, None)
            .map_err(|e| failed(format!("{e:?}")))?;
        emitter::emit(&Event {
            routing_key: "legacy.emitted".to_owned(),
            body: "{}".to_owned(),
        });
        Ok(vec![Event {
            routing_key: "legacy.pong".to_owned(),
            body: format!("{{\"version\":{version}}}"),
        }])
    }
}

export!(Legacy);
