//! The topology this bus declares: its exchanges, the domain queues and
//! their bindings, the reactors' event queues, the subscription queues, the
//! dead-letter queues.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

use parallel_you_core::host_info::{CommandInfo, QueryInfo};

/// The topic exchange commands are published to.
pub const COMMANDS_EXCHANGE: &str = "parallel_you.commands";
/// The topic exchange events are published to.
pub const EVENTS_EXCHANGE: &str = "parallel_you.events";
/// The dead-letter exchange, and the queue bound to it.
pub const DEAD_LETTER: &str = "parallel_you.dead_letter";
/// The durable queue of reactors' dead letters (one for all reactors, so
/// `pyou dlq list` needs no list of queues; no reactor queue can take the
/// name, theirs all start `parallel_you.reactor.`).
pub const REACTOR_DEAD_LETTERS: &str = "parallel_you.reactor_dead_letters";
/// The topic exchange query requests are published to, under
/// `<domain>.<name>`: each query a reactor answers is bound from it to the
/// reactor's query queue, its summary and params schema in the binding's
/// arguments, so the bindings list the queries as they list the commands.
pub const QUERIES_EXCHANGE: &str = "parallel_you.queries";
/// Binding argument holding a query's or a command's summary (on every
/// command binding a host makes: its presence says the others are there).
pub(super) const SUMMARY_ARG: &str = "x-pyou-summary";
/// Binding argument holding a query's params schema (JSON text).
pub(super) const SCHEMA_ARG: &str = "x-pyou-params-schema";
/// Binding argument holding a command's body schema (JSON text).
pub(super) const BODY_SCHEMA_ARG: &str = "x-pyou-body-schema";
/// Binding argument marking a command internal (`true`; absent otherwise).
pub(super) const INTERNAL_ARG: &str = "x-pyou-internal";
/// How long a query queue outlives its last consumer: queries are asked
/// of live hosts only, and a request waits no longer than its asker.
const QUERY_QUEUE_EXPIRY_MS: i64 = 60 * 1000;
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

/// The queue holding a reactor's query requests.
pub fn query_queue(domain: &str) -> String {
    format!("parallel_you.query.{domain}")
}

/// The arguments of the binding of `query` (see [`QUERIES_EXCHANGE`]).
pub(super) fn query_arguments(query: &QueryInfo) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        SUMMARY_ARG.into(),
        AMQPValue::LongString(query.summary.as_str().into()),
    );
    if let Some(schema) = &query.params_schema {
        arguments.insert(
            SCHEMA_ARG.into(),
            AMQPValue::LongString(schema.to_string().as_str().into()),
        );
    }
    arguments
}

/// The arguments of the binding of `command` on [`COMMANDS_EXCHANGE`]:
/// what a gateway elsewhere lists and refuses by (see
/// [`parallel_you_core::bus::Binding::info`]).
pub(super) fn command_arguments(command: &CommandInfo) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        SUMMARY_ARG.into(),
        AMQPValue::LongString(command.summary.as_str().into()),
    );
    if let Some(schema) = &command.body_schema {
        arguments.insert(
            BODY_SCHEMA_ARG.into(),
            AMQPValue::LongString(schema.to_string().as_str().into()),
        );
    }
    if command.internal {
        arguments.insert(INTERNAL_ARG.into(), AMQPValue::Boolean(true));
    }
    arguments
}

/// The command a binding of `routing_key` declares, as the management API
/// lists its arguments; `None` for a key bound without them.
pub(super) fn command_of(
    routing_key: &str,
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> Option<CommandInfo> {
    let summary = arguments.get(SUMMARY_ARG)?.as_str()?;
    Some(CommandInfo {
        routing_key: routing_key.to_owned(),
        summary: summary.to_owned(),
        body_schema: arguments
            .get(BODY_SCHEMA_ARG)
            .and_then(|v| v.as_str())
            .and_then(|text| serde_json::from_str(text).ok()),
        internal: arguments.get(INTERNAL_ARG).and_then(|v| v.as_bool()) == Some(true),
    })
}

/// A binding's arguments as the management API lists them, back in AMQP
/// form (to unbind it: the arguments are part of a binding). Ours are
/// only strings and booleans.
pub(super) fn field_table(arguments: &serde_json::Map<String, serde_json::Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in arguments {
        let value = match v {
            serde_json::Value::String(text) => AMQPValue::LongString(text.as_str().into()),
            serde_json::Value::Bool(b) => AMQPValue::Boolean(*b),
            _ => continue,
        };
        table.insert(k.as_str().into(), value);
    }
    table
}

/// Declares a reactor's query queue (not durable: a request is worth
/// nothing once its asker stopped waiting; it expires once unused) and
/// binds its queries. Idempotent.
pub(super) async fn declare_queries(
    channel: &Channel,
    domain: &str,
    queries: &[QueryInfo],
) -> lapin::Result<()> {
    let queue = query_queue(domain);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(QUERY_QUEUE_EXPIRY_MS),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            arguments,
        )
        .await?;
    for query in queries {
        channel
            .queue_bind(
                queue.as_str().into(),
                QUERIES_EXCHANGE.into(),
                format!("{domain}.{}", query.name).as_str().into(),
                QueueBindOptions::default(),
                query_arguments(query),
            )
            .await?;
    }
    Ok(())
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

/// Declares the shared exchanges and, with `dead_letters`, the
/// dead-letter exchange and queues (a gateway's user may have no
/// permission on those). Idempotent.
pub(super) async fn declare_topology(channel: &Channel, dead_letters: bool) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [COMMANDS_EXCHANGE, EVENTS_EXCHANGE, QUERIES_EXCHANGE] {
        channel
            .exchange_declare(
                exchange.into(),
                lapin::ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    if !dead_letters {
        return Ok(());
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
        .queue_declare(
            REACTOR_DEAD_LETTERS.into(),
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
/// binds `commands` to it, each with its arguments. Both are idempotent.
pub(super) async fn declare_domain(
    channel: &Channel,
    domain: &str,
    commands: &[CommandInfo],
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
    for command in commands {
        channel
            .queue_bind(
                queue.as_str().into(),
                COMMANDS_EXCHANGE.into(),
                command.routing_key.as_str().into(),
                QueueBindOptions::default(),
                command_arguments(command),
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
