// The saga `trip`, shared by the `trip` (1.0.0), `trip2` (2.0.0) and
// `tripsweep` builds, which set `VERSION`, `SCHEMA` and `RETENTION_MS`
// (how long a finished instance is kept; `None`: the SDK's default).
//
// Started by `ledger.begun {run, a, b, c}`: three steps `a`, `b`, `c`,
// each `ledger.apply {key: "<run>-<step>", mode: <the plan's mode>}`,
// answered by `ledger.applied` (or error `ledger.error` with
// `context.key`), undone by `ledger.revert` (answered `ledger.reverted`).
// Steps `a` and `c` wait 1 s per try, `b` 30 s (so a test can upgrade
// the saga while an instance waits there); two tries each, 200 ms apart.
// Schema 2 adds `migrated_from` to a schema 1 state.

use std::time::Duration;

use parallel_you_sdk::saga::{Request, Retry, Saga, Step};
use parallel_you_sdk::{export_reactor, CommandToSend, Error, EventReactor, Reactor};
use serde_json::{json, Value};

struct Trip;

impl EventReactor for Trip {
    fn reactor() -> Reactor {
        let mut saga = Saga::new("trip", VERSION)
            .state_version(SCHEMA)
            .starts_on("ledger.begun", |ev| {
                Ok(ev.body.get("run").is_some().then(|| ev.body.clone()))
            });
        if SCHEMA > 1 {
            saga = saga.migrate(|old, mut state| {
                if old != 1 {
                    return Err(Error::validation(format!("no migration from schema {old}")));
                }
                state["migrated_from"] = json!(old);
                Ok(state)
            });
        }
        for (name, wait) in [("a", 1_000), ("b", 30_000), ("c", 1_000)] {
            saga = saga.step(step(name, Duration::from_millis(wait)));
        }
        if let Some(ms) = RETENTION_MS {
            saga = saga.retention(Duration::from_millis(ms));
        }
        saga.sends(&["ledger.apply", "ledger.revert"]).reactor()
    }
}

fn step(name: &'static str, timeout: Duration) -> Step {
    Step::new(name, move |s| {
        let run = s["run"].as_str().ok_or_else(|| Error::validation("no `run`"))?;
        let mode = s[name].as_str().unwrap_or("ok");
        Ok(vec![Request::new(
            format!("{run}-{name}"),
            "ledger.apply",
            &json!({ "key": format!("{run}-{name}"), "mode": mode }),
        )?])
    })
    .completes_on("ledger.applied", "/key")
    .fails_on("ledger.error", "/context/key")
    .compensate(
        |_: &Value, key| CommandToSend::new("ledger.revert", &json!({ "key": key })).map(Some),
        "ledger.reverted",
        "/key",
    )
    .timeout(timeout)
    .retry(Retry {
        max_attempts: 2,
        first_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(200),
        on: &["timeout"],
    })
}

export_reactor!(Trip);
