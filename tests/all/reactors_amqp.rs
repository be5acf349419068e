//! Reactors on a real RabbitMQ (see `common::rabbit`): two hosts sharing a
//! store compete for the reactor's queue without doubling a count, commands
//! a reactor sends cross the broker to their handler once, and a poisoned
//! event is dead-lettered then replayed through the broker once fixed.

use crate::common;
use crate::reactors::{counts, event, eventually, handled, host_over};

use std::sync::Arc;
use std::time::Duration;

use common::rabbit::Rabbit;
use parallel_you_core::bus::Publisher;
use parallel_you_core::{MemoryStore, Store};
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use parallel_you_host::dead_letter;
use parallel_you_host::HotLoader;
use serde_json::json;

async fn bus(rabbit: &Rabbit) -> Arc<AmqpBus> {
    let mut config = AmqpConfig::new(rabbit.url());
    config.management_url = Some(rabbit.management_url());
    Arc::new(AmqpBus::connect(config).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_share_a_reactor_and_its_commands_cross_the_broker_once() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let names = ["tally", "noop", "counter"];
    let (a, _da) = host_over(&names, store.clone()).await;
    let (b, _db) = host_over(&names, store.clone()).await;
    let serving_a = a.serve(bus(&rabbit).await).await.unwrap();
    let serving_b = b.serve(bus(&rabbit).await).await.unwrap();
    let client = bus(&rabbit).await;
    const N: u64 = 200;
    for i in 0..N {
        client
            .publish(event("noop.ponged", json!({ "i": i })))
            .await
            .unwrap();
    }
    // Ignored: no pattern matches (the broker's wider `#.` binding may
    // still deliver some; the host drops them).
    client
        .publish(event("noop.touched", json!({})))
        .await
        .unwrap();
    // A command out, to the counter behind the broker.
    client
        .publish(event(
            "noop.ponged",
            json!({"send": "counter.increment", "name": "x"}),
        ))
        .await
        .unwrap();
    let (ha, hb) = (a.clone(), b.clone());
    eventually("every event handled", || {
        let (ha, hb) = (ha.clone(), hb.clone());
        // N + the sender + the counter's incremented event.
        async move { handled(&ha) + handled(&hb) >= N + 2 }
    })
    .await;
    let c = counts(&a).await;
    assert_eq!(c["noop.ponged"], N + 1, "{c}");
    assert_eq!(c["counter.incremented"], 1, "{c}");
    assert!(c.get("noop.touched").is_none(), "{c}");
    let value = common::call(&a, common::cmd("counter.get", r#"{"name":"x"}"#)).await;
    assert_eq!(common::body(&value[0])["value"], 1, "{value:?}");
    assert_eq!(handled(&a) + handled(&b), N + 2);
    serving_a.shutdown(Duration::from_secs(5)).await;
    serving_b.shutdown(Duration::from_secs(5)).await;
}

/// `pyou dlq <args…> --bus <broker>`: its stdout, having checked it exits 0.
fn dlq(rabbit: &Rabbit, args: &[&str]) -> String {
    let out = common::pyou()
        .arg("dlq")
        .args(args)
        .args(["--bus", &rabbit.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pyou dlq {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_event_is_dead_lettered_on_the_broker_and_replayed_once() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, dir) = host_over(&["tally", "noop"], store.clone()).await;
    let amqp = bus(&rabbit).await;
    let serving = host.serve(amqp.clone()).await.unwrap();
    let mut dead = common::subscribe(amqp.as_ref(), "#.pyou.dead_lettered").await;
    amqp.publish(event("noop.ponged", json!({"poison": true})))
        .await
        .unwrap();
    let letter = common::next_within(&mut dead, Duration::from_secs(30))
        .await
        .expect("a dead letter is announced");
    let letter = common::body(&letter);
    assert_eq!(letter["code"], "poisoned");
    assert_eq!(letter["tries"], 3);
    let id = letter["id"].as_str().unwrap().to_owned();
    assert_eq!(host.metrics().reactor_counts("tally").2, 1, "counted dead");

    // Kept on the broker, not in the store; reading it does not take it.
    assert!(dead_letter::list(store.as_ref(), 10)
        .await
        .unwrap()
        .is_empty());
    for _ in 0..2 {
        let listed = amqp.dead_letters(10).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].reactor, "tally");
    }
    let listed = dlq(&rabbit, &["list"]);
    assert!(
        listed.contains(&id) && listed.contains("poisoned"),
        "{listed}"
    );
    let shown = dlq(&rabbit, &["show", &id]);
    assert!(shown.contains("noop.ponged"), "{shown}");
    assert_eq!(amqp.dead_letters(10).await.unwrap().len(), 1);

    // Fixed, then replayed through the broker: counted once.
    let file = dir.path().join("tally.wasm");
    std::fs::copy(common::components().join("tally2.wasm"), &file).unwrap();
    HotLoader::new(host.clone()).load_file(&file).await;
    let replayed = dlq(&rabbit, &["replay", &id]);
    assert!(replayed.contains("tally"), "{replayed}");
    let h = host.clone();
    eventually("the replayed event counted", || {
        let h = h.clone();
        async move { counts(&h).await["noop.ponged"] == 1 }
    })
    .await;
    assert!(dlq(&rabbit, &["list"]).contains("no dead letters"));
    // A second replay finds nothing; drop of a missing one fails.
    let again = common::pyou()
        .args(["dlq", "replay", &id, "--bus", &rabbit.url()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counts(&host).await["noop.ponged"], 1);
    serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_dead_letter_on_the_broker_keeps_the_others() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (host, _dir) = host_over(&["tally", "noop"], store.clone()).await;
    let amqp = bus(&rabbit).await;
    let serving = host.serve(amqp.clone()).await.unwrap();
    let mut dead = common::subscribe(amqp.as_ref(), "#.pyou.dead_lettered").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        amqp.publish(event("noop.ponged", json!({"poison": true, "i": i})))
            .await
            .unwrap();
        let letter = common::next_within(&mut dead, Duration::from_secs(30))
            .await
            .expect("a dead letter is announced");
        ids.push(common::body(&letter)["id"].as_str().unwrap().to_owned());
    }
    let dropped = dlq(&rabbit, &["drop", &ids[1]]);
    assert!(dropped.contains(&ids[1]), "{dropped}");
    let mut left: Vec<String> = amqp
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    left.sort();
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(left, want);
    assert!(!amqp.drop_dead_letter(&ids[1]).await.unwrap());
    serving.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tries_are_counted_per_event_across_hosts() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (a, _da) = host_over(&["tally", "noop"], store.clone()).await;
    let (b, _db) = host_over(&["tally", "noop"], store.clone()).await;
    let serving_a = a.serve(bus(&rabbit).await).await.unwrap();
    let serving_b = b.serve(bus(&rabbit).await).await.unwrap();
    let client = bus(&rabbit).await;
    let mut dead = common::subscribe(client.as_ref(), "#.pyou.dead_lettered").await;
    const POISONED: usize = 4;
    for i in 0..POISONED {
        client
            .publish(event("noop.ponged", json!({"poison": true, "i": i})))
            .await
            .unwrap();
    }
    for _ in 0..POISONED {
        let letter = common::next_within(&mut dead, Duration::from_secs(30))
            .await
            .expect("a dead letter is announced");
        // Three tries per event in all, whichever host made each.
        assert_eq!(common::body(&letter)["tries"], 3);
    }
    let retries = |h: &parallel_you_host::Host| h.metrics().reactor_counts("tally").1;
    let dead_counts = |h: &parallel_you_host::Host| h.metrics().reactor_counts("tally").2;
    assert_eq!(retries(&a) + retries(&b), 2 * POISONED as u64);
    assert_eq!(dead_counts(&a) + dead_counts(&b), POISONED as u64);
    assert_eq!(client.dead_letters(10).await.unwrap().len(), POISONED);
    serving_a.shutdown(Duration::from_secs(5)).await;
    serving_b.shutdown(Duration::from_secs(5)).await;
}
