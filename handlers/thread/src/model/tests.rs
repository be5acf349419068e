//! Native tests of the state machine and sprint totals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::quantum::parse;

const T0: u64 = 1_700_000_000_000;

fn thread(kind: Kind) -> Thread {
    Thread::new(
        NewThread {
            id: format!("{}_1", kind.as_str()),
            kind,
            title: "t".into(),
            notes: String::new(),
            priority: 1,
            quantum: parse("25m").unwrap(),
            quantum_overridden: false,
            energy: Energy::default(),
            saga_id: None,
        },
        T0,
    )
}

fn in_state(kind: Kind, state: State) -> Thread {
    let mut t = thread(kind);
    t.state = state;
    t
}

fn actions() -> Vec<Action> {
    vec![
        Action::Start,
        Action::Park,
        Action::Block("waiting".into()),
        Action::Unblock,
        Action::Complete,
        Action::Archive,
    ]
}

const WORK_STATES: [State; 5] = [
    State::Ready,
    State::Running,
    State::Parked,
    State::Blocked,
    State::Done,
];

#[test]
fn new_threads_have_their_defaults() {
    let s = thread(Kind::Saga);
    assert_eq!(s.state, State::Active);
    assert_eq!((s.energy, s.quantum_overridden), (None, None));
    let t = thread(Kind::Task);
    assert_eq!(t.state, State::Ready);
    assert_eq!(t.energy, Some(Energy::Moderate));
    assert_eq!(t.quantum_overridden, Some(false));
    assert_eq!(t.created_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(t.run, 0);
}

/// The whole table for stories and tasks: what is allowed goes where
/// DESIGN §8 says, everything else is `invalid_transition` naming the
/// current state.
#[test]
fn work_state_machine() {
    use State::*;
    let expected = |action: &Action, from: State| -> Option<State> {
        match (action, from) {
            (Action::Start, Ready | Parked) => Some(Running),
            (Action::Park, Ready | Running) => Some(Parked),
            (Action::Block(_), Ready | Running) => Some(Blocked),
            (Action::Unblock, Blocked) => Some(Ready),
            (Action::Complete, Running) => Some(Done),
            (Action::Archive, Done) => Some(Done),
            _ => None,
        }
    };
    for kind in [Kind::Story, Kind::Task] {
        for from in WORK_STATES {
            for action in actions() {
                let t = in_state(kind, from);
                match (apply(&t, &action, T0 + 1), expected(&action, from)) {
                    (Ok(next), Some(to)) => {
                        assert_eq!(next.state, to, "{action:?} from {from:?}")
                    }
                    (Err(e), None) => {
                        assert_eq!(e.code(), "invalid_transition", "{action:?} from {from:?}");
                        let ctx = e.context().unwrap();
                        assert_eq!(ctx["current_state"], from.as_str());
                        assert_eq!(ctx["command"], action.verb());
                        assert!(
                            e.message().contains(&format!("it is {}", from.as_str())),
                            "{}",
                            e.message()
                        );
                    }
                    (got, want) => {
                        panic!("{action:?} from {from:?}: got {got:?}, want {want:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn sagas_only_complete_and_archive() {
    let active = in_state(Kind::Saga, State::Active);
    for action in actions() {
        let r = apply(&active, &action, T0);
        if action == Action::Complete {
            assert_eq!(r.unwrap().state, State::Done);
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.code(), "invalid_transition", "{action:?}");
            assert_eq!(e.context().unwrap()["current_state"], "active");
        }
    }
    let done = in_state(Kind::Saga, State::Done);
    assert!(apply(&done, &Action::Archive, T0).unwrap().archived);
    assert!(apply(&done, &Action::Complete, T0).is_err());
    let e = apply(&active, &Action::Start, T0).unwrap_err();
    assert!(
        e.message().contains("not worked on directly"),
        "{}",
        e.message()
    );
}

#[test]
fn starting_counts_runs_and_sets_the_quantum_end() {
    let t = thread(Kind::Story);
    let r1 = apply(&t, &Action::Start, T0).unwrap();
    assert_eq!(r1.run, 1);
    assert_eq!(r1.started_at.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    assert_eq!(
        r1.quantum_ends_at.as_deref(),
        Some("2023-11-14T22:38:20.000Z")
    );
    let mut r1 = r1;
    r1.timer_id = Some("timer".into());
    let parked = apply(&r1, &Action::Park, T0 + 5).unwrap();
    assert_eq!(parked.timer_id, None, "leaving running drops the timer");
    assert_eq!(parked.quantum_ends_at, None);
    assert_eq!(parked.updated_at, "2023-11-14T22:13:20.005Z");
    let r2 = apply(&parked, &Action::Start, T0 + 10).unwrap();
    assert_eq!(r2.run, 2);
    let done = apply(&r2, &Action::Complete, T0 + 20).unwrap();
    assert_eq!(
        done.completed_at.as_deref(),
        Some("2023-11-14T22:13:20.020Z")
    );
    assert_eq!(done.run, 2);
}

#[test]
fn blocking_needs_a_reason_and_unblocking_clears_it() {
    let t = thread(Kind::Task);
    for bad in ["", "   "] {
        let e = apply(&t, &Action::Block(bad.into()), T0).unwrap_err();
        assert_eq!(e.code(), "validation");
    }
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    assert_eq!(
        apply(&t, &Action::Block(long), T0).unwrap_err().code(),
        "validation"
    );
    let b = apply(&t, &Action::Block(" waiting on review ".into()), T0).unwrap();
    assert_eq!(b.blocked_reason.as_deref(), Some("waiting on review"));
    let e = apply(&b, &Action::Start, T0).unwrap_err();
    assert!(
        e.message().contains("it is blocked (waiting on review)"),
        "{}",
        e.message()
    );
    let u = apply(&b, &Action::Unblock, T0).unwrap();
    assert_eq!((u.state, u.blocked_reason), (State::Ready, None));
}

#[test]
fn archiving_is_once_and_only_when_done() {
    let done = in_state(Kind::Story, State::Done);
    let archived = apply(&done, &Action::Archive, T0).unwrap();
    assert!(archived.archived);
    assert_eq!(
        archived.archived_at.as_deref(),
        Some("2023-11-14T22:13:20.000Z")
    );
    let e = apply(&archived, &Action::Archive, T0).unwrap_err();
    assert_eq!(e.code(), "invalid_transition");
    assert!(e.message().contains("already archived"));
    assert_eq!(e.context().unwrap()["current_state"], "done");
    let e = apply(&in_state(Kind::Story, State::Running), &Action::Archive, T0).unwrap_err();
    assert_eq!(e.context().unwrap()["allowed_from"], json!(["done"]));
}

#[test]
fn sprint_totals_sum_quanta() {
    let mut a = thread(Kind::Story);
    a.set_quantum(&parse("1h").unwrap(), true);
    let mut b = thread(Kind::Story);
    b.state = State::Done;
    let totals = sprint_totals([&a, &b]);
    assert_eq!((totals.stories, totals.stories_done), (2, 1));
    assert_eq!(totals.planned, "1h25m");
    assert_eq!(totals.done, "25m");
    assert_eq!(totals.done_ms, 25 * 60_000);
    assert_eq!(sprint_totals([]).planned, "0s");
}
