// The body of `tally` and `tally-fixed` (see their lib.rs): one source, two
// builds.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "reactor",
});

use exports::parallel_you::handler::event_reactor::Guest;
use parallel_you::handler::reactor_types::{
    CommandToSend, DeliveredEvent, QueryInfo, ReactorManifest,
};
use parallel_you::handler::types::HandlerError;
use parallel_you::handler::{scheduler, store};
use serde_json::{json, Value};

struct Tally;

fn error(code: &str, message: impl Into<String>) -> HandlerError {
    HandlerError {
        code: code.to_owned(),
        message: message.into(),
        context: None,
    }
}

fn store_error(e: store::StoreError) -> HandlerError {
    match e {
        store::StoreError::Conflict(v) => error("conflict", format!("at version {v}")),
        store::StoreError::NotFound => error("not_found", "no such document"),
        store::StoreError::Invalid(m) => error("invalid", m),
        store::StoreError::Unavailable(m) => error("unavailable", m),
    }
}

fn count_of(key: &str) -> Result<(u64, Option<u64>), HandlerError> {
    let doc = store::get("counts", key).map_err(store_error)?;
    Ok(match doc {
        Some(d) => {
            let v: Value = serde_json::from_str(&d.json).unwrap_or(Value::Null);
            (v["n"].as_u64().unwrap_or(0), Some(d.version))
        }
        None => (0, Some(0)),
    })
}

impl Guest for Tally {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            domain: "tally".to_owned(),
            version: VERSION.to_owned(),
            subscribes: vec![
                "noop.ponged".to_owned(),
                "counter.incremented".to_owned(),
                "tally.*".to_owned(),
            ],
            sends: vec!["counter.increment".to_owned()],
            queries: vec![
                QueryInfo {
                    name: "counts".to_owned(),
                    summary: "Events seen, by routing key".to_owned(),
                    params_schema: None,
                },
                QueryInfo {
                    name: "count".to_owned(),
                    summary: "Events seen of one routing key".to_owned(),
                    params_schema: Some(
                        r#"{"type":"object","required":["key"],"properties":{"key":{"type":"string"}}}"#
                            .to_owned(),
                    ),
                },
                QueryInfo {
                    name: "write".to_owned(),
                    summary: "Tries to write (refused: queries are read-only)".to_owned(),
                    params_schema: None,
                },
            ],
            indexes: Vec::new(),
        }
    }

    fn on_event(event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        let body: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
        if !FIXED && body["poison"] == json!(true) {
            return Err(error("poisoned", "this event is poisoned"));
        }
        if !FIXED && body["trap"] == json!(true) {
            panic!("tally was asked to trap");
        }
        let key = event.meta.routing_key;
        let (n, version) = count_of(&key)?;
        store::upsert("counts", &key, &json!({ "n": n + 1 }).to_string(), version)
            .map_err(store_error)?;
        if let Some(ms) = body["timer_ms"].as_u64() {
            scheduler::schedule(ms, "tally.tick", "{}").map_err(store_error)?;
        }
        let mut out = Vec::new();
        if let Some(send) = body["send"].as_str() {
            out.push(CommandToSend {
                routing_key: send.to_owned(),
                body: json!({ "name": body["name"] }).to_string(),
            });
        }
        if let Some(n) = body["flood"].as_u64() {
            for i in 0..n {
                out.push(CommandToSend {
                    routing_key: "counter.increment".to_owned(),
                    body: json!({ "name": format!("f{i}") }).to_string(),
                });
            }
        }
        Ok(out)
    }

    fn query(name: String, params: String) -> Result<String, HandlerError> {
        let params: Value = serde_json::from_str(&params).unwrap_or(Value::Null);
        match name.as_str() {
            "counts" => {
                let docs = store::list("counts", "{}").map_err(store_error)?;
                let mut out = serde_json::Map::new();
                for d in docs {
                    let v: Value = serde_json::from_str(&d.json).unwrap_or(Value::Null);
                    out.insert(d.id, v["n"].clone());
                }
                Ok(Value::Object(out).to_string())
            }
            "count" => {
                let key = params["key"].as_str().unwrap_or_default();
                Ok(count_of(key)?.0.to_string())
            }
            "write" => {
                store::upsert("counts", "sneaky", "{}", None).map_err(store_error)?;
                Ok("true".to_owned())
            }
            other => Err(error("not_found", format!("no query {other:?}"))),
        }
    }
}

export!(Tally);
