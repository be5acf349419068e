//! What a saga answers about its instances: `saga_list` (by status) and
//! `saga_show` (one, with its history, pending timer and compensations).

use serde::Deserialize;
use serde_json::{json, Value};

use super::instance::Instance;
use super::run::{INSTANCES, UNREADABLE};
use crate::{Error, QueryCtx, Reactor};

/// Most instances one `saga_list` answers.
pub const MAX_LIST: u32 = 500;

const LIST_SCHEMA: &str = r#"{"type": "object", "properties": {"status": {"type": "string", "enum": ["running", "compensating", "completed", "failed", "parked"]}, "limit": {"type": "integer", "minimum": 1, "maximum": 500}}, "additionalProperties": false}"#;
const SHOW_SCHEMA: &str = r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 1}}, "additionalProperties": false}"#;

#[derive(Deserialize)]
struct List {
    status: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
struct Show {
    id: String,
}

/// `reactor` with the two queries and the index `saga_list` uses.
pub(crate) fn add(reactor: Reactor) -> Reactor {
    reactor
        .query(
            "saga_list",
            "Saga instances, newest first by id, optionally of one status",
            list,
        )
        .schema(LIST_SCHEMA)
        .query(
            "saga_show",
            "One saga instance: status, step, history, pending timer, compensations",
            show,
        )
        .schema(SHOW_SCHEMA)
        .index(INSTANCES, &["status", "started_ms"])
}

fn list(ctx: &QueryCtx, p: List) -> Result<Value, Error> {
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let mut filter = json!({ "$limit": limit, "$sort": { "started_ms": -1 } });
    if let Some(status) = &p.status {
        filter["status"] = json!(status);
    }
    let mut instances: Vec<Value> = ctx
        .collection::<Value>(INSTANCES)
        .list(filter)?
        .into_iter()
        .map(|d| summary(&d.id, &d.value))
        .collect();
    if matches!(p.status.as_deref(), None | Some("parked")) {
        for d in ctx
            .collection::<Value>(UNREADABLE)
            .list(json!({ "$limit": limit }))?
        {
            instances.retain(|i| i["id"] != json!(d.id));
            instances.push(json!({
                "id": d.id,
                "status": "parked",
                "reason": d.value.get("reason"),
                "unreadable": true,
            }));
        }
    }
    Ok(json!({ "count": instances.len(), "instances": instances }))
}

/// One line per instance: read as loosely as possible, since a list
/// must not fail on one instance a newer version wrote.
fn summary(id: &str, doc: &Value) -> Value {
    let pick = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "id": id,
        "status": pick("status"),
        "step": pick("step_name"),
        "stuck": pick("stuck"),
        "started_ms": pick("started_ms"),
        "updated_ms": pick("updated_ms"),
        "failure": pick("failure"),
    })
}

fn show(ctx: &QueryCtx, p: Show) -> Result<Value, Error> {
    let Some(doc) = ctx.collection::<Value>(INSTANCES).get(&p.id)? else {
        return Err(Error::not_found(format!("no saga instance `{}`", p.id)));
    };
    let unreadable = ctx
        .collection::<Value>(UNREADABLE)
        .get(&p.id)?
        .map(|d| d.value);
    let mut answer =
        json!({ "version": doc.version, "instance": doc.value, "unreadable": unreadable });
    if let Ok(inst) = serde_json::from_value::<Instance>(answer["instance"].clone()) {
        answer["timers"] = json!(inst.timer.into_iter().collect::<Vec<_>>());
        answer["compensations"] = json!(inst
            .done
            .iter()
            .rev()
            .filter_map(|d| d
                .compensation
                .as_ref()
                .map(|c| json!({ "step": d.step, "key": d.key, "command": c })))
            .collect::<Vec<_>>());
    }
    Ok(answer)
}
