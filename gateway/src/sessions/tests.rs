//! The session buffers' rules, one at a time, without a gateway.

use super::*;

fn event(session: &str, n: u32) -> Envelope {
    let cmd = Envelope::command("a.b", "{}")
        .map(|c| c.with_session(session))
        .unwrap_or_else(|e| panic!("{e}"));
    let body =
        serde_json::value::RawValue::from_string(n.to_string()).unwrap_or_else(|e| panic!("{e}"));
    Envelope::event_for(&cmd.meta, "a.done", body)
}

fn limits(events: usize, window: Duration, sessions: usize) -> Limits {
    Limits {
        events,
        bytes: usize::MAX,
        total_bytes: usize::MAX,
        window,
        sessions,
    }
}

fn attach(sessions: &Sessions, id: &str, client: Option<&str>) -> Attached {
    sessions
        .attach(id, client, None)
        .unwrap_or_else(|| panic!("{id} refused"))
}

fn seqs(p: &Pending) -> Vec<u64> {
    p.events.iter().map(|e| e.seq).collect()
}

#[test]
fn replays_what_a_client_missed_and_counts_what_was_dropped() {
    let sessions = Sessions::new(limits(3, Duration::from_secs(60), 10));
    let first = attach(&sessions, "s", None);
    assert_eq!(first.cursor, 0);
    sessions.file(&event("s", 1));
    let p = sessions.pending("s", first.cursor);
    assert_eq!((p.missed, p.events.len()), (0, 1));
    sessions.delivered("s", None, p.events[0].seq);
    sessions.detach("s");
    for n in 2..=6 {
        sessions.file(&event("s", n));
    }
    let again = attach(&sessions, "s", None);
    assert_eq!(again.cursor, 1);
    let p = sessions.pending("s", again.cursor);
    // Events 2..=6 arrived while away; the buffer kept the last 3.
    assert_eq!(p.missed, 2);
    assert_eq!(seqs(&p), [4, 5, 6]);
    assert_eq!(sessions.live(), 1);
}

#[test]
fn a_named_client_resumes_from_its_own_cursor_whoever_came_between() {
    let sessions = Sessions::new(limits(100, Duration::from_secs(60), 10));
    attach(&sessions, "s", Some("tab-a"));
    sessions.file(&event("s", 1));
    sessions.delivered("s", Some("tab-a"), 1);
    sessions.detach("s");
    for n in 2..=4 {
        sessions.file(&event("s", n));
    }
    // A second tab attaches and is served everything meanwhile.
    let b = attach(&sessions, "s", Some("tab-b"));
    assert_eq!(b.cursor, 1);
    sessions.delivered("s", Some("tab-b"), 4);
    sessions.detach("s");
    // The first tab still gets what it missed: 2, 3 and 4.
    let a = attach(&sessions, "s", Some("tab-a"));
    assert_eq!(seqs(&sessions.pending("s", a.cursor)), [2, 3, 4]);
    // An unnamed client resumes after what anyone was given.
    assert_eq!(attach(&sessions, "s", None).cursor, 4);
}

#[test]
fn a_full_table_evicts_the_oldest_idle_session_only() {
    let sessions = Sessions::new(limits(10, Duration::from_secs(60), 3));
    for id in ["old", "mid", "new"] {
        sessions.file(&event(id, 1));
        std::thread::sleep(Duration::from_millis(2));
    }
    sessions.file(&event("fourth", 1));
    assert!(
        sessions.pending("old", 0).events.is_empty(),
        "oldest evicted"
    );
    for id in ["mid", "new", "fourth"] {
        assert_eq!(sessions.pending(id, 0).events.len(), 1, "{id} kept");
    }
    assert_eq!(sessions.shed.evicted.load(Ordering::Relaxed), 1);
    // With every session live, a new one is refused, and says so.
    for id in ["mid", "new", "fourth"] {
        attach(&sessions, id, None);
    }
    assert!(sessions.attach("fifth", None, None).is_none());
    sessions.file(&event("fifth", 1));
    assert_eq!(sessions.shed.refused.load(Ordering::Relaxed), 1);
    assert!(sessions.pending("mid", 0).events.len() == 1);
}

#[test]
fn buffers_are_bounded_in_bytes_per_session_and_in_all() {
    let one = event("a", 1).to_json().len();
    let sessions = Sessions::new(Limits {
        events: 1000,
        bytes: one * 3,
        total_bytes: one * 5,
        window: Duration::from_secs(60),
        sessions: 100,
    });
    // Single digits: every event the same size.
    for n in 1..=9 {
        sessions.file(&event("a", n));
    }
    assert_eq!(seqs(&sessions.pending("a", 0)).len(), 3);
    assert_eq!(sessions.buffered_bytes(), one * 3);
    // Another session's events push the idle one out of the budget.
    sessions.file(&event("b", 1));
    sessions.file(&event("b", 2));
    assert_eq!(sessions.buffered_bytes(), one * 5);
    sessions.file(&event("b", 3));
    assert!(sessions.pending("a", 0).events.is_empty(), "idle a evicted");
    assert_eq!(sessions.buffered_bytes(), one * 3);
    // A live session over the budget loses its own oldest events.
    attach(&sessions, "b", None);
    attach(&sessions, "c", None);
    for n in 1..=4 {
        sessions.file(&event("c", n));
    }
    assert!(sessions.buffered_bytes() <= one * 5);
    assert!(sessions.shed.trimmed.load(Ordering::Relaxed) > 0);
    // An event over every bound is still buffered alone, for a live
    // client.
    let huge = Sessions::new(Limits {
        bytes: 1,
        total_bytes: 1,
        ..limits(10, Duration::from_secs(60), 10)
    });
    huge.file(&event("h", 1));
    assert_eq!(huge.pending("h", 0).events.len(), 1);
}

#[test]
fn the_feed_carries_every_event_once_followed() {
    let sessions = Sessions::new(limits(10, Duration::from_secs(60), 10));
    sessions.file(&event("a", 1));
    let mut feed = sessions.follow();
    sessions.file(&event("b", 2));
    let no_session = Envelope::event_for(
        &parallel_you_core::envelope::Meta::new(parallel_you_core::Kind::Command, "a.b"),
        "handler.loaded",
        serde_json::value::RawValue::from_string("{}".to_owned()).unwrap_or_else(|e| panic!("{e}")),
    );
    sessions.file(&no_session);
    let Ok(first) = feed.try_recv() else {
        panic!("nothing fed")
    };
    assert_eq!(first.session_id.as_deref(), Some("b"));
    let Ok(second) = feed.try_recv() else {
        panic!("no second event")
    };
    assert_eq!(
        (second.routing_key.as_str(), second.session_id.as_deref()),
        ("handler.loaded", None)
    );
    assert!(feed.try_recv().is_err());
}

#[test]
fn sessions_are_separate_and_idle_ones_are_forgotten() {
    let sessions = Sessions::new(limits(10, Duration::ZERO, 10));
    sessions.file(&event("a", 1));
    assert!(sessions.pending("b", 0).events.is_empty());
    sessions.collect_idle();
    assert!(sessions.pending("a", 0).events.is_empty());
}

#[test]
fn a_client_resumes_after_the_event_it_names_or_says_the_buffer_is_too_short() {
    let sessions = Sessions::new(limits(3, Duration::from_secs(60), 10));
    let events: Vec<Envelope> = (1..=5).map(|n| event("s", n)).collect();
    for e in &events {
        sessions.file(e);
    }
    // Buffered: 3, 4, 5. A client this gateway never saw names event 3.
    let id = |n: usize| events[n - 1].meta.message_id.clone();
    let a = sessions
        .attach("s", Some("tab"), Some(&id(3)))
        .unwrap_or_else(|| panic!("refused"));
    assert!(!a.before_buffer);
    assert_eq!(seqs(&sessions.pending("s", a.cursor)), [4, 5]);
    // Known now: its own cursor wins over what it names.
    sessions.delivered("s", Some("tab"), 5);
    let again = sessions
        .attach("s", Some("tab"), Some(&id(3)))
        .unwrap_or_else(|| panic!("refused"));
    assert_eq!((again.cursor, again.before_buffer), (5, false));
    // Event 1 is gone: everything buffered, and the history must fill in.
    let old = sessions
        .attach("s", Some("other"), Some(&id(1)))
        .unwrap_or_else(|| panic!("refused"));
    assert!(old.before_buffer);
    let p = sessions.pending("s", old.cursor);
    assert_eq!((p.missed, seqs(&p)), (0, vec![3, 4, 5]));
    // A session this gateway has not seen at all (it restarted).
    let fresh = sessions
        .attach("new", None, Some(&id(1)))
        .unwrap_or_else(|| panic!("refused"));
    assert!(fresh.before_buffer);
    assert!(sessions.pending("new", fresh.cursor).events.is_empty());
}
