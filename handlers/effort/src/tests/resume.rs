//! `thread.restored` back to running: a failed sprint close put back a
//! story its saga had parked, and the run goes on as if never parked.

use super::{orders_of_four, record, thread, EndReason, Fact, Mem, MIN, T0};

/// Started at T0, parked by a sprint close at 20, put back at 21 (the
/// close failed), parked for real at 50.
fn closed_and_put_back() -> Vec<(Fact, &'static str, u64)> {
    vec![
        (Fact::Started, "running", T0),
        (Fact::Ended(EndReason::Parked), "parked", T0 + 20 * MIN),
        (Fact::Resumed, "running", T0 + 21 * MIN),
        (Fact::Ended(EndReason::Parked), "parked", T0 + 50 * MIN),
    ]
}

fn apply(store: &Mem, events: &[(Fact, &str, u64)]) {
    for (fact, state, at) in events {
        record(store, &thread("t1", 1, state), *fact, *at).unwrap();
    }
}

#[test]
fn a_story_put_back_by_a_failed_close_counts_the_whole_run() {
    let store = Mem::default();
    let h = closed_and_put_back();
    apply(&store, &h[..2]);
    assert_eq!(store.total("thread:t1"), 20 * MIN, "parked by the close");
    apply(&store, &h[2..3]);
    assert_eq!(
        store.total("thread:t1"),
        0,
        "running again: an open run without an expiry counts nothing yet"
    );
    apply(&store, &h[3..]);
    for id in ["thread:t1", "saga:s1", "sprint:sp1", "energy:deep"] {
        assert_eq!(
            store.total(id),
            50 * MIN,
            "{id}: the park that was undone is not an end"
        );
    }
    let s = store.snapshot();
    assert_eq!(
        s[&("totals".into(), "thread:t1".into())]["runs"],
        1,
        "one run"
    );
    let run = &s[&("runs".into(), "t1#00000000000000000001".into())];
    assert_eq!(run["ended_ms"], T0 + 50 * MIN);
}

#[test]
fn any_order_and_duplicates_give_the_same_totals() {
    let in_order = Mem::default();
    apply(&in_order, &closed_and_put_back());
    let want = in_order.totals();
    let h = closed_and_put_back();
    for order in orders_of_four() {
        let store = Mem::default();
        let events: Vec<_> = order.iter().flat_map(|&i| [h[i], h[i]]).collect();
        apply(&store, &events);
        assert_eq!(store.totals(), want, "order {order:?}");
        assert_eq!(store.total("thread:t1"), 50 * MIN, "order {order:?}");
    }
}

#[test]
fn a_restore_to_anything_but_running_moves_no_time() {
    let store = Mem::default();
    let h = closed_and_put_back();
    apply(&store, &h[..2]);
    let before = store.snapshot();
    apply(&store, &[(Fact::Resumed, "ready", T0 + 21 * MIN)]);
    apply(&store, &[(Fact::Resumed, "done", T0 + 22 * MIN)]);
    assert_eq!(store.snapshot(), before);
}

#[test]
fn a_run_recorded_before_restores_counted_keeps_its_end() {
    let store = Mem::default();
    apply(&store, &closed_and_put_back()[..2]);
    // As an older effort wrote it: no `ends`, no `resumed_ms`.
    {
        let mut docs = store.0.borrow_mut();
        let doc = docs
            .get_mut(&("runs".to_owned(), "t1#00000000000000000001".to_owned()))
            .unwrap();
        let obj = doc.0.as_object_mut().unwrap();
        obj.remove("ends");
        obj.remove("resumed_ms");
    }
    let before = store.snapshot();
    apply(&store, &closed_and_put_back()[1..2]);
    assert_eq!(
        store.snapshot(),
        before,
        "its end, seen again, is a duplicate"
    );
    apply(&store, &closed_and_put_back()[2..]);
    assert_eq!(
        store.total("thread:t1"),
        50 * MIN,
        "its end voided by the restore"
    );
}
