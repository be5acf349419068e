//! The `{{name}}` domain: a Parallel You command handler.
//!
//! | command | body | answer |
//! |---|---|---|
//! | `{{name}}.hello` | `{name}` | `{{name}}.greeted {greeting, times}` |
//!
//! Build with `pyou build`, try with
//! `pyou invoke --handlers dist {{name}}.hello '{"name":"Ada"}'`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

struct App;

impl Handler for App {
    fn router() -> Router {
        Router::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .command("{{name}}.hello", "Greet someone and count the greetings", hello)
            .schema(HELLO_SCHEMA)
            .emits(&["{{name}}.greeted"])
    }
}

/// Checked by the host before the handler runs: a bad body never gets here.
const HELLO_SCHEMA: &str = r#"{
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}}
}"#;

#[derive(Deserialize)]
struct Hello {
    name: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Tally {
    times: u64,
}

fn hello(ctx: &Ctx, cmd: Hello) -> Result<Vec<Event>, Error> {
    let tallies = ctx.collection::<Tally>("tallies");
    let (times, version) = match tallies.get(&cmd.name)? {
        Some(doc) => (doc.value.times, doc.version),
        None => (0, 0),
    };
    // Optimistic concurrency: a concurrent greeting makes this a `conflict`.
    tallies.put(&cmd.name, &Tally { times: times + 1 }, Some(version))?;
    ctx.info(format!("greeted {}", cmd.name));
    Ok(vec![Event::new(
        "{{name}}.greeted",
        &json!({ "greeting": format!("Hello, {}!", cmd.name), "times": times + 1 }),
    )?])
}

export_handler!(App);
