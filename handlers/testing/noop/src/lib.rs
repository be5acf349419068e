//! Test and benchmark handler (domain `noop`).
//!
//! * `noop.ping` answers `noop.ponged` whose body is the command's body,
//!   parsed and re-serialised: JSON in, JSON out, nothing else.
//! * `noop.touch {id}` reads document `id` of collection `docs` (`{}` if it
//!   does not exist), writes it back unconditionally and answers
//!   `noop.touched {id, version}`: one store round trip.
//! * `noop.emit {n}` publishes `n` events `noop.emitted {i}` through the
//!   emitter, then answers `noop.done {n}`.
//! * `noop.later {delay_ms, body, key?}` schedules `key` (default
//!   `noop.ping`) with `body` and
//!   answers `noop.scheduled {timer_id}`; `noop.cancel {timer_id}` answers
//!   `noop.cancelled {cancelled}`.
//! * `noop.stray` returns an event of another domain (the host refuses it).
//! * `noop.whoami` answers `noop.identified {user_id, session_id,
//!   fired_by_timer}`: what a handler sees of its sender.
//! * `noop.secret` is internal (only noop's timers may send it) and
//!   answers like `noop.ping`.

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
            .command("noop.later", "Schedule `key` (default `noop.ping`) after `delay_ms`", later)
            .command("noop.cancel", "Cancel a timer", cancel)
            .command("noop.stray", "Return another domain's event", stray)
            .command(
                "noop.whoami",
                "Answer `noop.identified` with the sender's user id and session",
                whoami,
            )
            .command(
                "noop.secret",
                "Internal: only noop's timers send it",
                ping,
            )
            .internal()
            .emits(&[
                "noop.identified",
                "noop.ponged",
                "noop.touched",
                "noop.emitted",
                "noop.done",
                "noop.scheduled",
                "noop.cancelled",
            ])
    }
}

export_handler!(Noop);

fn whoami(ctx: &Ctx, _body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new(
        "noop.identified",
        &json!({
            "user_id": ctx.user_id(),
            "session_id": ctx.meta().session_id,
            "fired_by_timer": ctx.fired_by_timer(),
        }),
    )?])
}

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

#[derive(Deserialize)]
struct Later {
    delay_ms: u64,
    body: Value,
    /// The command the timer sends (default `noop.ping`).
    #[serde(default)]
    key: Option<String>,
}

fn later(ctx: &Ctx, cmd: Later) -> Result<Vec<Event>, Error> {
    let delay = std::time::Duration::from_millis(cmd.delay_ms);
    let key = cmd.key.as_deref().unwrap_or("noop.ping");
    let timer_id = ctx.schedule(delay, key, &cmd.body)?;
    Ok(vec![Event::new(
        "noop.scheduled",
        &json!({ "timer_id": timer_id }),
    )?])
}

#[derive(Deserialize)]
struct Cancel {
    timer_id: String,
}

fn cancel(ctx: &Ctx, cmd: Cancel) -> Result<Vec<Event>, Error> {
    let cancelled = ctx.cancel(&cmd.timer_id)?;
    Ok(vec![Event::new(
        "noop.cancelled",
        &json!({ "cancelled": cancelled }),
    )?])
}

fn stray(_ctx: &Ctx, _body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new("counter.hijacked", &json!({}))?])
}
