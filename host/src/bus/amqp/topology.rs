//! The topology this bus declares: its exchanges, the domain queues and
//! their bindings, the reactors' event queues, the subscription queues, the
//! dead-letter queue.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

/// The topic exchange commands are published to.
pub const COMMANDS_EXCHANGE: &str = "parallel_you.commands";
/// The topic exchange events are published to.
pub const EVENTS_EXCHANGE: &str = "parallel_you.events";
/// The dead-letter exchange, and the queue bound to it.
pub const DEAD_LETTER: &str = "parallel_you.dead_letter";
/// How long a subscription's queue outlives its last consumer.
const SUBSCRIPTION_EXPIRY_MS: i64 = 10 * 60 * 1000;
/// Events a subscription's queue holds before the oldest are dropped.
const SUBSCRIPTION_MAX_LENGTH: i64 = 100_000;

/// The queue holding a domain's commands.
pub fn domain_queue(domain: &str) -> String {
    format!("{COMMANDS_EXCHANGE}.{domain}")
}

/// The queue holding a reactor's events.
pub fn reactor_queue(domain: &str) -> String {
    format!("parallel_you.reactor.{domain}")
}

/// The binding key on [`EVENTS_EXCHANGE`] of a reactor's pattern: events go
/// out under their topic, `<reply_channel>.<routing_key>`, so the pattern
/// is bound after any prefix (`#.`). That may match more than the pattern
/// does on the routing key alone; the host checks each event's key.
pub(super) fn reactor_binding(pattern: &str) -> String {
    if pattern.starts_with('#') {
        pattern.to_owned()
    } else {
        format!("#.{pattern}")
    }
}

/// Declares a reactor's durable queue (dead-lettering messages that are
/// not envelopes to [`DEAD_LETTER`]) and binds its patterns. Idempotent.
pub(super) async fn declare_reactor(
    channel: &Channel,
    domain: &str,
    patterns: &[String],
) -> lapin::Result<()> {
    let queue = reactor_queue(domain);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER.into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    for pattern in patterns {
        channel
            .queue_bind(
                queue.as_str().into(),
                EVENTS_EXCHANGE.into(),
                reactor_binding(pattern).as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

pub(super) async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [COMMANDS_EXCHANGE, EVENTS_EXCHANGE] {
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .exchange_declare(
            DEAD_LETTER.into(),
            lapin::ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            DEAD_LETTER.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER.into(),
            DEAD_LETTER.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Declares the domain's queue (dead-lettering to [`DEAD_LETTER`]) and
/// binds `keys` to it. Both are idempotent.
pub(super) async fn declare_domain(
    channel: &Channel,
    domain: &str,
    keys: &[String],
) -> lapin::Result<()> {
    let queue = domain_queue(domain);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER.into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    for key in keys {
        channel
            .queue_bind(
                queue.as_str().into(),
                COMMANDS_EXCHANGE.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares a subscription's queue (durable, expiring once unused, bounded)
/// and binds it to `pattern` on [`EVENTS_EXCHANGE`]. Idempotent.
pub(super) async fn declare_subscription(
    channel: &Channel,
    queue: &str,
    pattern: &str,
) -> lapin::Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(SUBSCRIPTION_EXPIRY_MS),
    );
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(SUBSCRIPTION_MAX_LENGTH),
    );
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            EVENTS_EXCHANGE.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
