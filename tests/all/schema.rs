//! Command bodies checked by the host against the schema the handler's
//! manifest declares, before the guest runs.

use crate::common;

use common::{body, call, cmd, host_with, last_error};

#[tokio::test]
async fn a_bad_body_is_refused_by_the_host_with_validation() {
    let (host, _dir) = host_with(&["counter"]).await;
    for (b, path, says) in [
        (
            r#"{"name":"x","by":1.5}"#,
            "/by",
            "`body.by` must be of type integer, not 1.5",
        ),
        (
            r#"{"name":"x","colour":"red"}"#,
            "",
            "`body` has an unknown field `colour`",
        ),
        (
            r#"{"name":"x","expected_version":-1}"#,
            "/expected_version",
            "`body.expected_version` must be at least 0",
        ),
        ("[1]", "", "`body` must be of type object, not an array"),
    ] {
        let c = cmd("counter.increment", b).with_session("s-1");
        let events = call(&host, c.clone()).await;
        assert_eq!(events.len(), 1, "{b}: {events:?}");
        assert_eq!(last_error(&events).as_deref(), Some("validation"), "{b}");
        let ev = &events[0];
        assert_eq!(ev.meta.routing_key, "counter.error");
        assert_eq!(ev.meta.causation_id.as_ref(), Some(&c.meta.correlation_id));
        assert_eq!(ev.meta.session_id.as_deref(), Some("s-1"));
        let err = body(ev);
        // The host's wording and its `context.errors`: the guest's typed
        // bodies would have answered with serde's message instead.
        assert_eq!(err["message"], says, "{b}");
        assert_eq!(err["context"]["errors"][0]["path"], path, "{b}");
        assert_eq!(err["command"], "counter.increment");
    }
    let events = call(&host, cmd("counter.get", r#"{"name":"x"}"#)).await;
    assert_eq!(
        last_error(&events).as_deref(),
        Some("not_found"),
        "no refused increment reached the store: {events:?}"
    );
}

#[tokio::test]
async fn a_refused_body_is_recorded_as_processed() {
    let (host, _dir) = host_with(&["counter"]).await;
    let c = cmd("counter.reset", r#"{"name":""}"#);
    let first = call(&host, c.clone()).await;
    assert_eq!(last_error(&first).as_deref(), Some("validation"));
    assert_eq!(
        body(&first[0])["message"],
        "`body.name` must be at least 1 characters"
    );
    let again = call(&host, c).await;
    assert_eq!(
        again[0].meta.message_id, first[0].meta.message_id,
        "a redelivery republishes the recorded refusal"
    );
    assert_eq!(host.metrics().errors_for("validation"), 1);
}

#[tokio::test]
async fn a_good_body_is_served() {
    let (host, _dir) = host_with(&["counter"]).await;
    let events = call(&host, cmd("counter.increment", r#"{"name":"ok","by":2}"#)).await;
    assert_eq!(last_error(&events), None, "{events:?}");
    assert_eq!(events[0].meta.routing_key, "counter.incremented");
    assert_eq!(body(&events[0])["value"], 2);
}

#[tokio::test]
async fn patterns_and_any_of_are_checked_for_thread() {
    let (host, _dir) = host_with(&["thread"]).await;
    let events = call(
        &host,
        cmd("thread.saga.create", r#"{"id":"no spaces","title":"s"}"#),
    )
    .await;
    assert_eq!(last_error(&events).as_deref(), Some("validation"));
    assert_eq!(
        body(&events[0])["message"],
        "`body.id` must match the pattern `^[A-Za-z0-9_-]{1,64}$`"
    );
    let events = call(
        &host,
        cmd("thread.saga.create", r#"{"id":"s-1","title":"s"}"#),
    )
    .await;
    assert_eq!(
        events[0].meta.routing_key, "thread.saga.created",
        "{events:?}"
    );
    // `quantum` on update is a duration or null (anyOf).
    let events = call(
        &host,
        cmd("thread.update", r#"{"id":"s-1","quantum":"soon"}"#),
    )
    .await;
    assert_eq!(last_error(&events).as_deref(), Some("validation"));
    let message = body(&events[0])["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("`body.quantum` matches none of the allowed forms"),
        "{message}"
    );
    let events = call(
        &host,
        cmd("thread.update", r#"{"id":"s-1","quantum":null}"#),
    )
    .await;
    assert_eq!(last_error(&events), None, "{events:?}");
    assert_eq!(events[0].meta.routing_key, "thread.updated", "{events:?}");
}
