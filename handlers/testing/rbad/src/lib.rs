//! Test reactor (domain `rbad`) whose manifest subscribes with an invalid
//! topic pattern: the host must refuse to load it, and go on serving.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "reactor",
});

use exports::parallel_you::handler::event_reactor::Guest;
use parallel_you::handler::reactor_types::{CommandToSend, DeliveredEvent, ReactorManifest};
use parallel_you::handler::types::HandlerError;

struct Bad;

impl Guest for Bad {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            domain: "rbad".to_owned(),
            version: "1.0.0".to_owned(),
            subscribes: vec!["noop.Ponged#".to_owned()],
            sends: Vec::new(),
            queries: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn on_event(_event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        Ok(Vec::new())
    }

    fn query(_name: String, _params: String) -> Result<String, HandlerError> {
        Ok("null".to_owned())
    }
}

export!(Bad);
