//! Property tests over what clients and components send: envelope parsing,
//! the name grammars, topic matching and store filters never panic, and
//! nothing that breaks a grammar is accepted. Each grammar is restated
//! here independently (an oracle) rather than by calling the checker.

use parallel_you_core::bus::topic_matches;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::names::{
    check_event_pattern, check_routing_key, check_session_id, MAX_ID_LEN, MAX_ROUTING_KEY_LEN,
};
use parallel_you_core::store::Filter;
use proptest::prelude::*;
use serde_json::json;

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[a-z0-9_-]+(\.[a-z0-9_-]+)+`, at most 128 bytes.
fn routing_key_ok(k: &str) -> bool {
    k.len() <= MAX_ROUTING_KEY_LEN && k.split('.').count() >= 2 && k.split('.').all(segment_ok)
}

fn session_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Strings that are mostly near the grammar, so both sides are explored.
fn near_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.-]{0,40}",
        "[a-zA-Z0-9_. #*\\-]{0,40}",
        any::<String>(),
        "[a-z]{1,8}(\\.[a-z]{1,8}){1,4}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn routing_keys_are_accepted_exactly_when_they_fit_the_grammar(k in near_key()) {
        prop_assert_eq!(check_routing_key(&k).is_ok(), routing_key_ok(&k), "{:?}", k);
    }

    #[test]
    fn session_ids_are_accepted_exactly_when_they_fit_the_grammar(
        s in prop_oneof!["[A-Za-z0-9_-]{0,140}", any::<String>(), "[ -~]{0,20}"]
    ) {
        prop_assert_eq!(check_session_id(&s).is_ok(), session_ok(&s), "{:?}", s);
    }

    #[test]
    fn topic_matching_never_panics_and_exact_keys_match_themselves(
        p in near_key(), k in near_key()
    ) {
        let _ = topic_matches(&p, &k);
        if routing_key_ok(&k) {
            prop_assert!(topic_matches(&k, &k));
            prop_assert!(topic_matches("#", &k));
        }
        if check_event_pattern(&p).is_ok() {
            prop_assert!(p.len() <= MAX_ROUTING_KEY_LEN);
        }
    }

    #[test]
    fn any_text_parses_to_an_error_or_a_valid_envelope(text in any::<String>()) {
        if let Ok(env) = Envelope::from_json(&text, 1024) {
            prop_assert!(routing_key_ok(&env.meta.routing_key));
        }
    }

    #[test]
    fn an_accepted_envelope_fits_every_grammar_and_round_trips(
        key in near_key(),
        kind in prop_oneof![Just("command".to_owned()), Just("event".to_owned()), "[a-z]{0,8}"],
        message_id in prop_oneof!["[ -~]{1,20}", any::<String>()],
        session in proptest::option::of(prop_oneof!["[A-Za-z0-9_-]{1,12}", any::<String>()]),
        reply in proptest::option::of(prop_oneof![Just("session.s1".to_owned()), any::<String>()]),
        timestamp in prop_oneof![Just("2026-12-01T10:00:00.000Z".to_owned()), any::<String>()],
        body in prop_oneof![Just(json!({})), Just(json!([1, 2])), Just(json!("x".repeat(2000)))],
    ) {
        let mut meta = json!({
            "message_id": message_id,
            "kind": kind,
            "routing_key": key,
            "correlation_id": "c1",
            "timestamp": timestamp,
        });
        if let Some(s) = &session {
            meta["session_id"] = json!(s);
        }
        if let Some(r) = &reply {
            meta["reply_channel"] = json!(r);
        }
        let text = json!({ "meta": meta, "body": body }).to_string();
        if let Ok(env) = Envelope::from_json(&text, 1024) {
            prop_assert!(routing_key_ok(&env.meta.routing_key));
            prop_assert!(env.body.get().len() <= 1024);
            if let Some(s) = &env.meta.session_id {
                prop_assert!(session_ok(s));
            }
            prop_assert!(!env.meta.message_id.is_empty());
            let again = Envelope::from_json(&env.to_json(), 1024);
            prop_assert!(again.is_ok());
            prop_assert_eq!(again.map(|e| e.to_json()).ok(), Some(env.to_json()));
        }
    }

    #[test]
    fn filters_parse_to_an_error_or_a_filter_and_never_panic(
        text in prop_oneof![
            any::<String>(),
            "\\{\"[a-z$.]{1,8}\": *(\\{\"\\$[a-z]{2,4}\": *[0-9\\[\\]\",a-z]{0,10}\\}|[0-9]{1,4}|\"[a-z]{0,4}\")\\}",
        ]
    ) {
        let _ = Filter::parse(&text);
    }
}
