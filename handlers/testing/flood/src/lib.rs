//! Test handler (domain `flood`): each command pushes one of the host's
//! output limits, within what the WIT contract lets a guest do.
//!
//! - `flood.deep` returns `flood.deep` whose body nests `{"depth": n}`
//!   arrays deep (default 200);
//! - `flood.emit` emits `flood.drop` 100,000 times;
//! - `flood.fail` fails with the code its body names (`{"code": "…"}`),
//!   e.g. one that spells a host code such as `unavailable`;
//! - `flood.huge` fails with a 50 MB message and a 2 MB context;
//! - `flood.noisy` writes 1 MiB to stderr, then answers `flood.fine`;
//! - `flood.noisy-panic` writes 1 MiB to stderr, then panics;
//! - `flood.heavy` emits 1,000 events of 1 MiB less a little (each within
//!   the body cap, 1 GB in all), then answers `flood.fine`;
//! - `flood.fill` writes `{"count": n}` documents of 4 MB less a little
//!   to `hoard`, ids starting at `{"from": i}`;
//! - `flood.hoard` lists every document of `hoard` and answers how many;
//! - `flood.timers` schedules `{"count": n}` timers 30 days out;
//! - `flood.ok` answers `flood.fine`.

use std::io::Write;

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::de::IgnoredAny;
use serde::Deserialize;

const MIB: usize = 1 << 20;

struct Flood;

impl Handler for Flood {
    fn router() -> Router {
        Router::new("flood", env!("CARGO_PKG_VERSION"))
            .command("flood.deep", "Answer with a deeply nested body", deep)
            .command("flood.emit", "Emit 100,000 events", emit)
            .command("flood.fail", "Fail with the code the body names", fail)
            .command("flood.huge", "Fail with a 50 MB error message", huge)
            .command("flood.noisy", "Write 1 MiB to stderr, then answer", noisy)
            .command(
                "flood.noisy-panic",
                "Write 1 MiB to stderr, then panic",
                noisy_panic,
            )
            .command("flood.heavy", "Emit 1,000 events of ~1 MiB", heavy)
            .command("flood.fill", "Write documents of ~4 MB", fill)
            .command("flood.hoard", "List every document of `hoard`", hoard)
            .command("flood.timers", "Schedule timers 30 days out", timers)
            .command("flood.ok", "Answer `flood.fine`", ok)
            .emits(&[
                "flood.deep",
                "flood.drop",
                "flood.fine",
                "flood.heavy",
                "flood.hoarded",
            ])
    }
}

export_handler!(Flood);

#[derive(Deserialize)]
struct Depth {
    depth: Option<usize>,
}

fn deep(_ctx: &Ctx, body: Depth) -> Result<Vec<Event>, Error> {
    let depth = body.depth.unwrap_or(200);
    let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    Ok(vec![Event::raw("flood.deep", json)])
}

fn emit(ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    for i in 0..100_000 {
        ctx.emit(Event::raw("flood.drop", format!("{{\"i\":{i}}}")));
    }
    Ok(vec![Event::raw("flood.fine", "{}")])
}

#[derive(Deserialize)]
struct Failure {
    code: String,
}

fn fail(_ctx: &Ctx, body: Failure) -> Result<Vec<Event>, Error> {
    Err(Error::new(body.code, "flood.fail was asked to fail"))
}

fn huge(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let message = "é".repeat(25_000_000);
    let context = serde_json::json!({ "blob": "x".repeat(2 * MIB) });
    Err(Error::new("too_much", message).with_context(context))
}

fn write_stderr() {
    let line = [b'n'; 1023];
    let mut err = std::io::stderr();
    for _ in 0..1024 {
        // The host must keep accepting: a failed write would be its bug.
        let _ = err.write_all(&line);
        let _ = err.write_all(b"\n");
    }
}

fn noisy(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    write_stderr();
    eprintln!("still writing after 1 MiB");
    Ok(vec![Event::raw("flood.fine", "{}")])
}

fn noisy_panic(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    write_stderr();
    panic!("flood.noisy-panic was asked to panic")
}

fn ok(_ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::raw("flood.fine", "{}")])
}

fn heavy(ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let pad = "x".repeat(MIB - 64);
    for i in 0..1000 {
        ctx.emit(Event::raw(
            "flood.heavy",
            format!("{{\"i\":{i},\"pad\":\"{pad}\"}}"),
        ));
    }
    Ok(vec![Event::raw("flood.fine", "{}")])
}

#[derive(Deserialize)]
struct Fill {
    from: usize,
    count: usize,
}

fn fill(ctx: &Ctx, body: Fill) -> Result<Vec<Event>, Error> {
    let docs = ctx.collection::<serde_json::Value>("hoard");
    let pad = "x".repeat(4 * MIB - 64);
    for i in body.from..body.from + body.count {
        docs.put(&format!("{i:05}"), &serde_json::json!({ "pad": pad }), None)?;
    }
    Ok(vec![Event::raw("flood.fine", "{}")])
}

fn hoard(ctx: &Ctx, _body: IgnoredAny) -> Result<Vec<Event>, Error> {
    let docs = ctx
        .collection::<serde_json::Value>("hoard")
        .list(serde_json::json!({ "$limit": 10000 }))?;
    Ok(vec![Event::new(
        "flood.hoarded",
        &serde_json::json!({ "count": docs.len() }),
    )?])
}

#[derive(Deserialize)]
struct Count {
    count: usize,
}

fn timers(ctx: &Ctx, body: Count) -> Result<Vec<Event>, Error> {
    let later = std::time::Duration::from_secs(30 * 24 * 3600);
    for _ in 0..body.count {
        ctx.schedule(later, "flood.ok", &serde_json::json!({}))?;
    }
    Ok(vec![Event::raw("flood.fine", "{}")])
}
