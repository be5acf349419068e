//! Test and benchmark handler (domain `noop`).
//!
//! * `noop.ping` answers `noop.ponged` whose body is the command's body,
//!   parsed and re-serialised: JSON in, JSON out, nothing else.
//! * `noop.touch {id}` reads document `id` of collection `docs` (`{}` if it
//!   does not exist), writes it back unconditionally and answers
//!   `noop.touched {id, version}`: one store round trip.
//! * `noop.emit {n}` publishes `n` events `noop.emitted {i}` through the
//!   emitter, then answers `noop.done {n}`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::Deserialize;
use serde_json::{json, Value};

struct Noop;

impl Handler for Noop {
    fn router() -> Router {
        Router::new("noop", env!("CARGO_PKG_VERSION"))
            .command("noop.ping", "Echo the body as `noop.ponged`", ping)
            .command(
                "noop.touch",
                "Read document `id` of `docs` and write it back",
                touch,
            )
            .schema(r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#)
            .command(
                "noop.emit",
                "Emit `n` events early, then answer `noop.done`",
                emit,
            )
            .schema(r#"{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":0}}}"#)
            .emits(&["noop.ponged", "noop.touched", "noop.emitted", "noop.done"])
    }
}

export_handler!(Noop);

fn ping(_ctx: &Ctx, body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new("noop.ponged", &body)?])
}

#[derive(Deserialize)]
struct Touch {
    id: String,
}

fn touch(ctx: &Ctx, cmd: Touch) -> Result<Vec<Event>, Error> {
    let docs = ctx.collection::<Value>("docs");
    let value = docs.get(&cmd.id)?.map_or_else(|| json!({}), |d| d.value);
    let version = docs.put(&cmd.id, &value, None)?;
    Ok(vec![Event::new(
        "noop.touched",
        &json!({ "id": cmd.id, "version": version }),
    )?])
}

#[derive(Deserialize)]
struct Emit {
    n: u32,
}

fn emit(ctx: &Ctx, cmd: Emit) -> Result<Vec<Event>, Error> {
    for i in 0..cmd.n {
        ctx.emit(Event::new("noop.emitted", &json!({ "i": i }))?);
    }
    Ok(vec![Event::new("noop.done", &json!({ "n": cmd.n }))?])
}
