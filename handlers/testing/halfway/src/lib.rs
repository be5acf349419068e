//! Test handler (domain `halfway`): each command does something that lasts
//! (a write, an emitted event, a timer) and then fails in one way, to show
//! that a failed command keeps none of it. `halfway.count` writes and
//! answers; `halfway.peek` reads what is stored.
//!
//! Commands take `{"id": "<document id>"}`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::Deserialize;
use serde_json::{json, Value};

struct Halfway;

impl Handler for Halfway {
    fn router() -> Router {
        Router::new("halfway", env!("CARGO_PKG_VERSION"))
            .command(
                "halfway.write-then-trap",
                "Write, then panic",
                write_then_trap,
            )
            .command(
                "halfway.write-then-spin",
                "Write, then loop past the deadline",
                write_then_spin,
            )
            .command(
                "halfway.write-then-fail",
                "Write, then answer an error",
                write_then_fail,
            )
            .command(
                "halfway.emit-then-trap",
                "Emit an event, then panic",
                emit_then_trap,
            )
            .command(
                "halfway.schedule-then-trap",
                "Schedule a timer, then panic",
                schedule_then_trap,
            )
            .command(
                "halfway.count",
                "Add one to a counter document and answer it",
                count,
            )
            .command("halfway.peek", "Answer the stored document, if any", peek)
            .emits(&["halfway.started", "halfway.counted", "halfway.peeked"])
    }
}

export_handler!(Halfway);

#[derive(Deserialize)]
struct Target {
    id: String,
}

fn write(ctx: &Ctx, id: &str) -> Result<u64, Error> {
    ctx.collection::<Value>("docs")
        .put(id, &json!({"written": true}), None)
}

fn write_then_trap(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    write(ctx, &t.id)?;
    panic!("halfway.write-then-trap wrote, then panicked")
}

fn write_then_spin(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    write(ctx, &t.id)?;
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn write_then_fail(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    write(ctx, &t.id)?;
    Err(Error::validation("wrote, then refused"))
}

fn emit_then_trap(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    ctx.emit(Event::new("halfway.started", &json!({"id": t.id}))?);
    panic!("halfway.emit-then-trap emitted, then panicked")
}

fn schedule_then_trap(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    ctx.schedule(
        std::time::Duration::from_secs(3600),
        "halfway.count",
        &json!({"id": t.id}),
    )?;
    panic!("halfway.schedule-then-trap scheduled, then panicked")
}

fn count(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    let docs = ctx.collection::<Value>("counts");
    let (n, version) = match docs.get(&t.id)? {
        Some(doc) => (doc.value["n"].as_u64().unwrap_or(0), Some(doc.version)),
        None => (0, Some(0)),
    };
    docs.put(&t.id, &json!({"n": n + 1}), version)?;
    Ok(vec![Event::new(
        "halfway.counted",
        &json!({"id": t.id, "n": n + 1}),
    )?])
}

fn peek(ctx: &Ctx, t: Target) -> Result<Vec<Event>, Error> {
    let doc = ctx.collection::<Value>("docs").get(&t.id)?;
    let body = json!({"id": t.id, "stored": doc.map(|d| d.value)});
    Ok(vec![Event::new("halfway.peeked", &body)?])
}
