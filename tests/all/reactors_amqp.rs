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
use parallel_you_host::timers::{Clock, SystemClock};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_event_is_dead_lettered_and_replayed_through_the_broker() {
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

    let file = dir.path().join("tally.wasm");
    std::fs::copy(common::components().join("tally2.wasm"), &file).unwrap();
    HotLoader::new(host.clone()).load_file(&file).await;
    dead_letter::replay(store.as_ref(), &SystemClock as &dyn Clock, &id)
        .await
        .unwrap()
        .expect("the dead letter");
    let h = host.clone();
    eventually("the replayed event counted", || {
        let h = h.clone();
        async move { counts(&h).await["noop.ponged"] == 1 }
    })
    .await;
    serving.shutdown(Duration::from_secs(5)).await;
}
