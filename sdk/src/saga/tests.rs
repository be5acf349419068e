#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};

use super::instance::{Instance, Status, TimerKind};
use super::machine::{Effects, Machine, Outcome};
use super::{Request, Retry, Saga, Step};
use crate::CommandToSend;

/// Three steps: `hold` one seat per passenger, `book` a hotel, `pay`.
/// Holds and the hotel are undone; paying is not.
fn trip() -> Saga {
    Saga::new("trip", "1.0.0")
        .state_version(2)
        .migrate(|old, mut state| {
            if old == 1 {
                // v1 kept one passenger under `who`.
                let who = state["who"].take();
                state["people"] = json!([who]);
                return Ok(state);
            }
            Err(crate::Error::validation(format!("no way from {old}")))
        })
        .starts_on("trip.requested", |ev| Ok(Some(ev.body.clone())))
        .step(
            Step::new("hold", |s| {
                s["people"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        Request::new(p.as_str().unwrap_or(""), "seats.hold", &json!({ "who": p }))
                    })
                    .collect()
            })
            .completes_on("seats.held", "/who")
            .fails_on("seats.error", "/context/who")
            .records(|s, key, body| {
                s["seats"][key] = body["seat"].clone();
                Ok(())
            })
            .compensate(
                |s, key| {
                    CommandToSend::new(
                        "seats.release",
                        &json!({ "who": key, "seat": s["seats"][key] }),
                    )
                    .map(Some)
                },
                "seats.released",
                "/who",
            )
            .timeout(Duration::from_secs(5))
            .retry(Retry {
                max_attempts: 2,
                first_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(1),
                on: &["timeout"],
            }),
        )
        .step(
            Step::new("book", |s| {
                Ok(vec![Request::new(
                    "hotel",
                    "hotel.book",
                    &json!({ "nights": s["nights"] }),
                )?])
            })
            .completes_on("hotel.booked", "/ref")
            .fails_on("hotel.error", "/context/ref")
            .compensate(
                |_, _| CommandToSend::new("hotel.cancel", &json!({ "ref": "hotel" })).map(Some),
                "hotel.cancelled",
                "/ref",
            )
            .retry(Retry::never()),
        )
        .step(
            Step::new("pay", |_| {
                Ok(vec![Request::new("pay", "card.charge", &json!({}))?])
            })
            .completes_on("card.charged", "/ref")
            .fails_on("card.error", "/context/ref")
            .retry(Retry::never()),
        )
        .sends(&[
            "seats.hold",
            "seats.release",
            "hotel.book",
            "hotel.cancel",
            "card.charge",
        ])
}

const T0: u64 = 1_700_000_000_000;

fn m(saga: &Saga, at: u64) -> Machine<'_> {
    Machine { saga, now_ms: at }
}

fn started(saga: &Saga) -> (Instance, Effects) {
    m(saga, T0).start(
        "c1",
        json!({ "people": ["ada", "bob"], "nights": 2 }),
        Some("s1".into()),
    )
}

fn keys(cmds: &[CommandToSend]) -> Vec<&str> {
    cmds.iter().map(|c| c.routing_key.as_str()).collect()
}

fn events(fx: &Effects) -> Vec<&str> {
    fx.events.iter().map(|(e, _)| *e).collect()
}

/// Feeds one event through classify and answer, as the runner does.
fn feed(saga: &Saga, inst: &mut Instance, key: &str, routing_key: &str, body: Value) -> Effects {
    let machine = m(saga, T0 + 10);
    let outcome = machine
        .classify(inst, routing_key, key, &body)
        .unwrap_or_else(|| panic!("{routing_key} for {key} should answer the instance"));
    machine.answer(inst, outcome, key, &body).unwrap()
}

#[test]
fn a_start_sends_the_first_steps_requests_and_sets_its_timeout() {
    let saga = trip();
    let (inst, fx) = started(&saga);
    assert_eq!(inst.status, Status::Running);
    assert_eq!(inst.step_name.as_deref(), Some("hold"));
    assert_eq!(inst.schema_version, 2);
    assert_eq!(inst.session_id.as_deref(), Some("s1"));
    assert_eq!(events(&fx), ["started"]);
    assert_eq!(keys(&fx.commands), ["seats.hold", "seats.hold"]);
    assert_eq!(fx.wait, ["ada", "bob"]);
    assert_eq!(fx.schedule, Some((Duration::from_secs(5), 1)));
    let timer = inst.timer.as_ref().unwrap();
    assert_eq!(
        (timer.kind, timer.seq, timer.due_ms),
        (TimerKind::Timeout, 1, T0 + 5000)
    );
}

#[test]
fn every_step_completes_in_order_then_the_instance() {
    let saga = trip();
    let (mut inst, _) = started(&saga);
    let fx = feed(
        &saga,
        &mut inst,
        "ada",
        "seats.held",
        json!({ "who": "ada", "seat": "1A" }),
    );
    assert!(
        fx.commands.is_empty(),
        "one of two answers does not end the step"
    );
    assert_eq!(fx.unwait, ["ada"]);
    let fx = feed(
        &saga,
        &mut inst,
        "bob",
        "seats.held",
        json!({ "who": "bob", "seat": "1B" }),
    );
    assert_eq!(events(&fx), ["step_completed"]);
    assert_eq!(keys(&fx.commands), ["hotel.book"]);
    assert_eq!(inst.data["seats"], json!({ "ada": "1A", "bob": "1B" }));
    assert_eq!(
        fx.commands[0].parse::<Value>().unwrap(),
        json!({ "nights": 2 })
    );
    let fx = feed(
        &saga,
        &mut inst,
        "hotel",
        "hotel.booked",
        json!({ "ref": "hotel" }),
    );
    assert_eq!(keys(&fx.commands), ["card.charge"]);
    let fx = feed(
        &saga,
        &mut inst,
        "pay",
        "card.charged",
        json!({ "ref": "pay" }),
    );
    assert_eq!(events(&fx), ["step_completed", "completed"]);
    assert_eq!(inst.status, Status::Completed);
    assert_eq!(inst.step, 3);
    assert!(inst.timer.is_none() && inst.pending.is_empty());
    let what: Vec<&str> = inst.history.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "started",
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "completed"
        ]
    );
}

#[test]
fn a_failed_step_undoes_the_completed_requests_last_first() {
    let saga = trip();
    let (mut inst, _) = started(&saga);
    feed(
        &saga,
        &mut inst,
        "ada",
        "seats.held",
        json!({ "who": "ada", "seat": "1A" }),
    );
    feed(
        &saga,
        &mut inst,
        "bob",
        "seats.held",
        json!({ "who": "bob", "seat": "1B" }),
    );
    feed(
        &saga,
        &mut inst,
        "hotel",
        "hotel.booked",
        json!({ "ref": "hotel" }),
    );
    let fx = feed(
        &saga,
        &mut inst,
        "pay",
        "card.error",
        json!({ "code": "declined", "message": "no funds", "context": { "ref": "pay" }, "command": "card.charge" }),
    );
    assert_eq!(events(&fx), ["step_failed", "compensating"]);
    assert_eq!(
        fx.events[1].1["undo"],
        json!([{"step": "book", "key": "hotel"}, {"step": "hold", "key": "bob"}, {"step": "hold", "key": "ada"}])
    );
    assert_eq!(keys(&fx.commands), ["hotel.cancel"]);
    assert_eq!(inst.status, Status::Compensating);
    let fx = feed(
        &saga,
        &mut inst,
        "hotel",
        "hotel.cancelled",
        json!({ "ref": "hotel" }),
    );
    assert_eq!(events(&fx), ["compensated"]);
    assert_eq!(
        fx.commands[0].parse::<Value>().unwrap(),
        json!({ "who": "bob", "seat": "1B" })
    );
    feed(
        &saga,
        &mut inst,
        "bob",
        "seats.released",
        json!({ "who": "bob" }),
    );
    let fx = feed(
        &saga,
        &mut inst,
        "ada",
        "seats.released",
        json!({ "who": "ada" }),
    );
    assert_eq!(events(&fx), ["compensated", "failed"]);
    let failed = &fx.events[1].1;
    assert_eq!(failed["stuck"], false);
    assert_eq!(failed["failure"]["code"], "declined");
    assert_eq!(
        failed["undone"],
        json!([{"step": "book", "key": "hotel"}, {"step": "hold", "key": "bob"}, {"step": "hold", "key": "ada"}])
    );
    assert_eq!(inst.status, Status::Failed);
    assert!(!inst.stuck && inst.done.is_empty());
}

#[test]
fn an_error_naming_another_command_or_key_is_not_an_answer() {
    let saga = trip();
    let (inst, _) = started(&saga);
    let machine = m(&saga, T0);
    let other = json!({ "code": "x", "context": { "who": "ada" }, "command": "seats.count" });
    assert_eq!(machine.classify(&inst, "seats.error", "ada", &other), None);
    let mine = json!({ "code": "x", "context": { "who": "ada" }, "command": "seats.hold" });
    assert_eq!(
        machine.classify(&inst, "seats.error", "ada", &mine),
        Some(Outcome::Failed)
    );
    assert_eq!(
        machine.classify(&inst, "seats.held", "eve", &json!({ "who": "eve" })),
        None
    );
    assert_eq!(
        machine.classify(&inst, "hotel.booked", "ada", &json!({ "ref": "ada" })),
        None,
        "another step's answer"
    );
}

#[test]
fn a_try_without_an_answer_is_retried_after_the_backoff_then_fails_the_step() {
    let saga = trip();
    let (mut inst, _) = started(&saga);
    feed(
        &saga,
        &mut inst,
        "ada",
        "seats.held",
        json!({ "who": "ada", "seat": "1A" }),
    );
    inst.timer.as_mut().unwrap().id = Some("t1".into());
    let fx = m(&saga, T0 + 5000).timer(&mut inst, 1);
    assert!(fx.commands.is_empty());
    assert_eq!(
        fx.schedule,
        Some((Duration::from_secs(1), 2)),
        "the backoff"
    );
    assert_eq!(inst.timer.as_ref().unwrap().kind, TimerKind::Resend);
    assert_eq!(
        m(&saga, T0 + 5000).timer(&mut inst, 1),
        Effects::default(),
        "a stale timer"
    );
    let fx = m(&saga, T0 + 6000).timer(&mut inst, 2);
    assert_eq!(
        keys(&fx.commands),
        ["seats.hold"],
        "only the unanswered request again"
    );
    assert_eq!(inst.attempt, 2);
    assert_eq!(fx.schedule, Some((Duration::from_secs(5), 3)));
    let fx = m(&saga, T0 + 11_000).timer(&mut inst, 3);
    assert_eq!(events(&fx), ["step_failed", "compensating"]);
    assert_eq!(fx.events[0].1["code"], "timeout");
    assert_eq!(
        fx.events[1].1["undo"],
        json!([{"step": "hold", "key": "bob"}, {"step": "hold", "key": "ada"}]),
        "bob's hold may have happened: undone too, first"
    );
    assert_eq!(keys(&fx.commands), ["seats.release"]);
    assert_eq!(fx.unwait, ["bob"]);
    assert_eq!(fx.wait, ["bob"]);
}

#[test]
fn a_compensation_that_keeps_failing_leaves_the_instance_stuck_until_a_retry() {
    let saga = trip();
    let (mut inst, _) = started(&saga);
    feed(
        &saga,
        &mut inst,
        "ada",
        "seats.held",
        json!({ "who": "ada", "seat": "1A" }),
    );
    feed(
        &saga,
        &mut inst,
        "bob",
        "seats.error",
        json!({ "code": "sold_out", "context": { "who": "bob" } }),
    );
    assert_eq!(inst.status, Status::Compensating);
    let refusal =
        json!({ "code": "conflict", "context": { "who": "ada" }, "command": "seats.release" });
    let fx = feed(&saga, &mut inst, "ada", "seats.error", refusal.clone());
    assert!(
        fx.events.is_empty(),
        "any code is retried for a compensation"
    );
    let seq = inst.timer.as_ref().unwrap().seq;
    let fx = m(&saga, T0 + 2000).timer(&mut inst, seq);
    assert_eq!(keys(&fx.commands), ["seats.release"]);
    let fx = feed(&saga, &mut inst, "ada", "seats.error", refusal);
    assert_eq!(events(&fx), ["failed"]);
    assert_eq!(fx.events[0].1["stuck"], true);
    assert_eq!(
        fx.events[0].1["not_undone"],
        json!([{"step": "hold", "key": "ada"}])
    );
    assert!(fx.events[0].1["reason"]
        .as_str()
        .unwrap()
        .contains("pyou sagas retry c1"));
    assert_eq!((inst.status, inst.stuck), (Status::Failed, true));
    assert!(inst.timer.is_none());

    let fx = m(&saga, T0 + 9000).retry(&mut inst).unwrap();
    assert_eq!(events(&fx), ["compensating"]);
    assert_eq!(keys(&fx.commands), ["seats.release"]);
    assert_eq!((inst.status, inst.attempt), (Status::Compensating, 1));
    let fx = feed(
        &saga,
        &mut inst,
        "ada",
        "seats.released",
        json!({ "who": "ada" }),
    );
    assert_eq!(events(&fx), ["compensated", "failed"]);
    assert_eq!(fx.events[1].1["stuck"], false);
    assert!(
        m(&saga, T0).retry(&mut inst).is_err(),
        "nothing left to retry"
    );
}

#[test]
fn a_step_that_cannot_make_its_requests_fails_and_one_with_none_is_done() {
    let saga = Saga::new("s", "1")
        .starts_on("s.go", |_| Ok(Some(json!({}))))
        .step(Step::new("empty", |_| Ok(vec![])))
        .step(Step::new("broken", |_| {
            Err(crate::Error::validation("no plan"))
        }));
    let (inst, fx) = m(&saga, T0).start("c", json!({}), None);
    assert_eq!(
        events(&fx),
        [
            "started",
            "step_completed",
            "step_failed",
            "compensating",
            "failed"
        ]
    );
    assert_eq!(inst.status, Status::Failed);
    assert_eq!(inst.failure.unwrap().code, "validation");
}

#[test]
fn too_many_requests_fail_the_step() {
    let saga = Saga::new("s", "1").step(Step::new("wide", |_| {
        (0..=super::MAX_REQUESTS)
            .map(|i| Request::new(i.to_string(), "x.y", &json!({})))
            .collect()
    }));
    let (inst, fx) = m(&saga, T0).start("c", json!({}), None);
    assert!(fx.commands.is_empty());
    assert_eq!(inst.failure.unwrap().code, "limit_exceeded");
}

#[test]
fn an_older_state_is_migrated_and_an_unreadable_one_parked_untouched() {
    let saga = trip();
    let machine = m(&saga, T0);
    let (mut inst, _) = started(&saga);
    inst.schema_version = 1;
    inst.data = json!({ "who": "ada", "nights": 1 });
    let mut fx = Effects::default();
    assert!(saga.upgrade(&machine, &mut inst, &mut fx));
    assert_eq!(inst.data["people"], json!(["ada"]));
    assert_eq!(inst.schema_version, 2);
    assert!(fx.events.is_empty());

    for (version, why) in [(0, "no way from 0"), (3, "newer than this version's 2")] {
        let (mut inst, _) = started(&saga);
        inst.timer.as_mut().unwrap().id = Some("t9".into());
        inst.schema_version = version;
        let before = inst.data.clone();
        let mut fx = Effects::default();
        assert!(!saga.upgrade(&machine, &mut inst, &mut fx));
        assert_eq!(inst.status, Status::Parked);
        assert_eq!(inst.data, before, "the state is left as it was");
        assert_eq!(inst.schema_version, version);
        assert_eq!(events(&fx), ["parked"]);
        let reason = fx.events[0].1["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{reason}");
        assert_eq!(fx.cancel, ["t9"], "its timer is cancelled");
        assert_eq!(inst.parked.as_ref().unwrap().from, Status::Running);
    }
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let r = Retry {
        max_attempts: 9,
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        on: &[],
    };
    let waits: Vec<u128> = (1..=5).map(|a| r.backoff(a).as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 500, 500]);
    assert_eq!(r.backoff(u32::MAX).as_millis(), 500);
}

#[test]
fn the_reactor_subscribes_to_starts_and_answers_and_answers_the_saga_queries() {
    let manifest = trip().reactor().manifest();
    assert_eq!(manifest.domain, "trip");
    assert_eq!(
        manifest.subscribes,
        [
            "trip.requested",
            "seats.held",
            "seats.error",
            "seats.released",
            "hotel.booked",
            "hotel.error",
            "hotel.cancelled",
            "card.charged",
            "card.error"
        ]
    );
    assert!(manifest.sends.contains(&"hotel.cancel".to_owned()));
    let queries: Vec<&str> = manifest.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(queries, ["saga_list", "saga_show"]);
    assert_eq!(manifest.indexes[0].collection, "instances");
}

#[test]
fn an_instance_document_round_trips() {
    let saga = trip();
    let (inst, _) = started(&saga);
    let json = serde_json::to_value(&inst).unwrap();
    assert_eq!(json["status"], "running");
    let back: Instance = serde_json::from_value(json).unwrap();
    assert_eq!(back, inst);
}
