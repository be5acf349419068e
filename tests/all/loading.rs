//! Which components load, and clear errors for those that do not.

use crate::common;

use common::{call, cmd, handlers_dir, host_with, last_error, test_limits};
use parallel_you_core::MemoryStore;
use parallel_you_host::{Host, HostConfig};
use std::sync::Arc;

async fn load(dir: &std::path::Path) -> Arc<Host> {
    let host = Arc::new(
        Host::new(
            HostConfig {
                limits: test_limits(),
                max_body: 0,
                ..Default::default()
            },
            Arc::new(MemoryStore::new()),
        )
        .expect("host"),
    );
    host.load_dir(dir).await.expect("folder readable");
    host
}

#[tokio::test]
async fn component_claiming_another_domains_key_is_refused() {
    let dir = handlers_dir(&["counter", "intruder"]);
    let host = load(dir.path()).await;
    let status = host.status();
    let intruder = status
        .iter()
        .find(|s| s.file.ends_with("intruder.wasm"))
        .expect("listed");
    let error = intruder.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("counter.increment") && error.contains("outside its own domain"),
        "{error}"
    );
    let failure = host.registry().failures()[0].clone();
    assert!(
        failure.to_string().contains("intruder.wasm"),
        "the error names the file: {failure}"
    );
    // Nothing of the intruder is served, and counter still is.
    assert!(host.registry().route("intruder.ok").is_none());
    let events = call(&host, cmd("counter.increment", r#"{"name":"a"}"#)).await;
    assert_eq!(last_error(&events), None);
}

#[tokio::test]
async fn two_components_with_one_domain_is_a_load_error() {
    let dir = handlers_dir(&["counter", "twin"]);
    let host = load(dir.path()).await;
    let failures = host.registry().failures().to_vec();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let text = failures[0].to_string();
    assert!(
        text.contains("twin.wasm")
            && text.contains("counter.wasm")
            && text.contains("already served"),
        "{text}"
    );
    assert!(host.registry().route("counter.twin").is_none());
    assert!(host.registry().route("counter.increment").is_some());
}

#[tokio::test]
async fn broken_files_are_reported_and_the_rest_load() {
    let dir = handlers_dir(&["counter"]);
    std::fs::write(dir.path().join("garbage.wasm"), b"this is not wasm").expect("write");
    // A core module, valid wasm but not a component.
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").expect("write");
    std::fs::write(dir.path().join("empty.wasm"), b"").expect("write");
    std::fs::write(dir.path().join("notes.txt"), b"ignored").expect("write");
    let host = load(dir.path()).await;
    let status = host.status();
    assert_eq!(status.len(), 4, "{status:#?}");
    for name in ["garbage.wasm", "core.wasm", "empty.wasm"] {
        let s = status
            .iter()
            .find(|s| s.file.ends_with(name))
            .expect("listed");
        assert!(
            s.error
                .as_deref()
                .unwrap_or_default()
                .contains("not a valid WebAssembly component"),
            "{s:?}"
        );
    }
    let events = call(&host, cmd("counter.increment", r#"{"name":"a"}"#)).await;
    assert_eq!(last_error(&events), None);
}

#[tokio::test]
async fn unknown_routing_key_is_an_error_event() {
    let (host, _dir) = host_with(&["counter"]).await;
    let c = cmd("nobody.home", "{}").with_session("s9");
    let events = call(&host, c.clone()).await;
    assert_eq!(last_error(&events).as_deref(), Some("unknown_routing_key"));
    assert_eq!(events[0].meta.routing_key, "nobody.error");
    assert_eq!(
        events[0].meta.causation_id.as_ref(),
        Some(&c.meta.correlation_id)
    );
    assert_eq!(events[0].topic(), "session.s9.nobody.error");
}

#[tokio::test]
async fn manifest_is_listed() {
    let (host, _dir) = host_with(&["counter"]).await;
    let status = host.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].domain.as_deref(), Some("counter"));
    assert!(status[0]
        .routing_keys
        .contains(&"counter.increment".to_owned()));
    assert!(status[0].version.is_some());
}
