//! Test reactor (domain `rlegacy013`) built against the host's frozen copy
//! of the `parallel-you:handler@0.1.3` contract (`host/wit/0.1.3`), whose
//! delivered events' `meta` has no `user-id`: the host speaks 0.1.4 and
//! must still load it, deliver events and run its queries. It keeps the
//! last `noop.ponged` it saw (message id and session) and answers the
//! query `last` with it.

wit_bindgen::generate!({
    path: "../../../host/wit/0.1.3",
    world: "reactor",
});

use exports::parallel_you::handler::event_reactor::Guest;
use parallel_you::handler::reactor_types::{
    CommandToSend, DeliveredEvent, QueryInfo, ReactorManifest,
};
use parallel_you::handler::store;
use parallel_you::handler::types::HandlerError;

struct Legacy;

fn failed(e: store::StoreError) -> HandlerError {
    HandlerError {
        code: "store".to_owned(),
        message: format!("{e:?}"),
        context: None,
    }
}

impl Guest for Legacy {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            domain: "rlegacy013".to_owned(),
            version: "0.1.3".to_owned(),
            subscribes: vec!["noop.ponged".to_owned()],
            sends: Vec::new(),
            queries: vec![QueryInfo {
                name: "last".to_owned(),
                summary: "The last noop.ponged seen".to_owned(),
                params_schema: None,
            }],
            indexes: Vec::new(),
        }
    }

    fn on_event(event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        let seen = serde_json::json!({
            "message_id": event.meta.message_id,
            "session_id": event.meta.session_id,
        });
        store::upsert("seen", "last", &seen.to_string(), None).map_err(failed)?;
        Ok(Vec::new())
    }

    fn query(_name: String, _params: String) -> Result<String, HandlerError> {
        let doc = store::get("seen", "last").map_err(failed)?;
        Ok(doc.map_or_else(|| "null".to_owned(), |d| d.json))
    }
}

export!(Legacy);
