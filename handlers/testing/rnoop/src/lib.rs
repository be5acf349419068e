//! Test reactor (domain `rnoop`) for `benches/reactor.rs`: subscribes to
//! `noop.ponged`, parses each event's body as JSON and returns no
//! commands; it writes nothing. What is left is the host's own cost per
//! event: the marker check, a fresh instance, the commit of the marker.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "reactor",
});

use exports::parallel_you::handler::event_reactor::Guest;
use parallel_you::handler::reactor_types::{CommandToSend, DeliveredEvent, ReactorManifest};
use parallel_you::handler::types::HandlerError;

struct Noop;

impl Guest for Noop {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            domain: "rnoop".to_owned(),
            version: "1.0.0".to_owned(),
            subscribes: vec!["noop.ponged".to_owned()],
            sends: Vec::new(),
            queries: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn on_event(event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        // The JSON work the native subscriber of the benchmark does too.
        let body: serde_json::Value =
            serde_json::from_str(&event.body).unwrap_or(serde_json::Value::Null);
        std::hint::black_box(body);
        Ok(Vec::new())
    }

    fn query(_name: String, _params: String) -> Result<String, HandlerError> {
        Ok("null".to_owned())
    }
}

export!(Noop);
