//! A mandatory publish nobody is bound to comes back to its own caller,
//! with other publishes in flight on the same connection: lapin hands a
//! returned message to whichever confirm of the channel completes next,
//! so on one shared channel an unroutable command was reported sent and a
//! routed one unroutable.

use crate::common;

use std::sync::Arc;

use common::rabbit::Rabbit;
use parallel_you_core::bus::{BusError, Publisher};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::Bus;
use parallel_you_host::bus::amqp::{AmqpBus, AmqpConfig};
use serde_json::value::RawValue;

/// Rounds of the mix below; each sends both kinds at once.
const ROUNDS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_command_comes_back_to_its_sender_while_others_flow() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let bus = Arc::new(
        AmqpBus::connect(AmqpConfig::new(rabbit.url()))
            .await
            .unwrap(),
    );
    bus.bind("bound", &[CommandInfo::bare("bound.hit")])
        .await
        .unwrap();

    let mut sends = tokio::task::JoinSet::new();
    for i in 0..ROUNDS {
        for (key, routed) in [("bound.hit", true), ("nobody.home", false)] {
            let bus = bus.clone();
            sends.spawn(async move {
                let sent = bus.send(common::cmd(key, "{}")).await;
                (i, routed, sent)
            });
        }
        // Events share the connection, as a host's do.
        let bus = bus.clone();
        sends.spawn(async move {
            let body = RawValue::from_string("{}".to_owned()).unwrap();
            let sent = bus.publish(Envelope::event("bound.happened", body)).await;
            (i, true, sent)
        });
    }
    let (mut routed_ok, mut returned) = (0, 0);
    while let Some(joined) = sends.join_next().await {
        let (i, routed, sent) = joined.unwrap();
        match (routed, sent) {
            (true, Ok(())) => routed_ok += 1,
            (false, Err(BusError::Unroutable { routing_key })) => {
                assert_eq!(routing_key, "nobody.home");
                returned += 1;
            }
            (routed, sent) => panic!("round {i}, routed {routed}: {sent:?}"),
        }
    }
    assert_eq!((routed_ok, returned), (2 * ROUNDS, ROUNDS));
    bus.close().await;
}
