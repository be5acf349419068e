//! Test and benchmark handler `ledger`, for the saga tests: each command
//! does what its body says, so a test can make a saga's step succeed, fail,
//! wait, or never be answered.
//!
//! * `ledger.begin {…}` answers `ledger.begun` with the same body (what
//!   starts a `trip` saga).
//! * `ledger.apply {key, mode}`: `ok` records `applied/<key>` once (asked
//!   again, it answers the same, so a resend is one effect) and answers
//!   `ledger.applied {key, tries}`; `fail` answers error `refused` with
//!   context `{key}`; `hold` records the key as held and answers nothing
//!   until `ledger.release {key}`; `silent` answers nothing.
//! * `ledger.revert {key}`: refused (`blocked`, context `{key}`) while
//!   `ledger.block_reverts {blocked: true}` holds; otherwise deletes
//!   `applied/<key>`, counts `reverted/<key>` and answers `ledger.reverted`.

use parallel_you_sdk::{export_handler, Ctx, Error, Event, Handler, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

struct Ledger;

impl Handler for Ledger {
    fn router() -> Router {
        Router::new("ledger", env!("CARGO_PKG_VERSION"))
            .command("ledger.begin", "Answer ledger.begun with the body", begin)
            .command("ledger.apply", "Apply `key` as `mode` says", apply)
            .command("ledger.release", "Answer a held apply", release)
            .command(
                "ledger.revert",
                "Undo `key` (unless reverts are blocked)",
                revert,
            )
            .command(
                "ledger.block_reverts",
                "Refuse reverts while `blocked`",
                block,
            )
            .emits(&[
                "ledger.begun",
                "ledger.applied",
                "ledger.reverted",
                "ledger.blocked",
            ])
    }
}

#[derive(Deserialize)]
struct Apply {
    key: String,
    mode: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Serialize, Deserialize)]
struct Block {
    blocked: bool,
}

/// One key's record: how often it was asked, and whether it is applied.
#[derive(Serialize, Deserialize, Default)]
struct Record {
    tries: u64,
    applied: bool,
    held: bool,
    reverted: u64,
}

fn begin(_ctx: &Ctx, body: Value) -> Result<Vec<Event>, Error> {
    Ok(vec![Event::new("ledger.begun", &body)?])
}

fn apply(ctx: &Ctx, b: Apply) -> Result<Vec<Event>, Error> {
    let records = ctx.collection::<Record>("records");
    let current = records.get(&b.key)?;
    let version = current.as_ref().map_or(0, |d| d.version);
    let mut rec = current.map(|d| d.value).unwrap_or_default();
    rec.tries += 1;
    let answer = match b.mode.as_str() {
        "ok" => {
            rec.applied = true;
            Some(json!({ "key": b.key, "tries": rec.tries }))
        }
        "fail" => {
            return Err(
                Error::new("refused", format!("`{}` is refused, as asked", b.key))
                    .with_context(json!({ "key": b.key })),
            )
        }
        "hold" => {
            rec.held = true;
            None
        }
        "silent" => None,
        other => return Err(Error::validation(format!("unknown mode `{other}`"))),
    };
    records.put(&b.key, &rec, Some(version))?;
    Ok(match answer {
        Some(body) => vec![Event::new("ledger.applied", &body)?],
        None => vec![],
    })
}

fn release(ctx: &Ctx, b: Key) -> Result<Vec<Event>, Error> {
    let records = ctx.collection::<Record>("records");
    let doc = records.require(&b.key)?;
    let mut rec = doc.value;
    rec.held = false;
    rec.applied = true;
    let tries = rec.tries;
    records.put(&b.key, &rec, Some(doc.version))?;
    Ok(vec![Event::new(
        "ledger.applied",
        &json!({ "key": b.key, "tries": tries }),
    )?])
}

fn revert(ctx: &Ctx, b: Key) -> Result<Vec<Event>, Error> {
    let switch = ctx.collection::<Block>("switches").get("reverts")?;
    if switch.is_some_and(|d| d.value.blocked) {
        return Err(
            Error::new("blocked", format!("reverts are blocked; `{}` stays", b.key))
                .with_context(json!({ "key": b.key })),
        );
    }
    let records = ctx.collection::<Record>("records");
    let current = records.get(&b.key)?;
    let version = current.as_ref().map_or(0, |d| d.version);
    let mut rec = current.map(|d| d.value).unwrap_or_default();
    // Idempotent in effect: reverting what is not applied changes nothing.
    if rec.applied {
        rec.applied = false;
        rec.reverted += 1;
        records.put(&b.key, &rec, Some(version))?;
    }
    Ok(vec![Event::new(
        "ledger.reverted",
        &json!({ "key": b.key, "reverted": rec.reverted }),
    )?])
}

fn block(ctx: &Ctx, b: Block) -> Result<Vec<Event>, Error> {
    ctx.collection::<Block>("switches")
        .put("reverts", &b, None)?;
    Ok(vec![Event::new(
        "ledger.blocked",
        &json!({ "blocked": b.blocked }),
    )?])
}

export_handler!(Ledger);
