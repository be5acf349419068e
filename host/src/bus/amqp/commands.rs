//! Binding a domain's commands on [`COMMANDS_EXCHANGE`], each with what
//! its manifest says of it in the binding's arguments (summary, body
//! schema, internal: `topology::command_arguments`), so a gateway with no
//! host in its process reads the API, and which commands are internal,
//! from the bindings alone (`Management::bindings`).
//!
//! A binding's arguments are part of it: binding a key again with other
//! arguments (a new version's summary, a key bound bare by an older host)
//! makes a second binding, and unbinding must name the arguments. So a
//! changed command's other bindings are removed once the new one is in,
//! and unbinding removes every binding of the key the broker lists.

use std::collections::BTreeSet;

use lapin::types::FieldTable;
use lapin::Channel;

use parallel_you_core::bus::BusError;
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::names::check_routing_key;

use super::topology::{
    command_arguments, command_of, declare_domain, domain_queue, field_table, COMMANDS_EXCHANGE,
};
use super::{unavailable, Shared};

/// Binds `commands` to `domain`'s queue (declaring it), remembering them
/// to bind again after a reconnection; a command that changed since it
/// was bound loses its other bindings.
pub(super) async fn bind(
    shared: &Shared,
    domain: &str,
    commands: &[CommandInfo],
) -> Result<(), BusError> {
    for c in commands {
        check_routing_key(&c.routing_key)?;
    }
    let changed: Vec<&CommandInfo> = {
        let mut bound = shared.bound.lock();
        let known = bound.entry(domain.to_owned()).or_default();
        commands
            .iter()
            .filter(|c| known.insert(c.routing_key.clone(), (*c).clone()).as_ref() != Some(*c))
            .collect()
    };
    // While the broker is away the intent is kept and applied on
    // reconnection; the host need not retry.
    let Ok(link) = shared.link() else {
        return Ok(());
    };
    let channel = link.conn.create_channel().await.map_err(unavailable)?;
    declare_domain(&channel, domain, commands)
        .await
        .map_err(unavailable)?;
    if !changed.is_empty() {
        forget_stale(shared, &channel, domain, &changed).await?;
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

/// Unbinds `changed`'s keys from `domain`'s queue wherever the broker
/// lists them with other arguments than theirs.
async fn forget_stale(
    shared: &Shared,
    channel: &Channel,
    domain: &str,
    changed: &[&CommandInfo],
) -> Result<(), BusError> {
    let queue = domain_queue(domain);
    let rows = match shared.management.source_bindings(COMMANDS_EXCHANGE).await {
        Ok(rows) => rows,
        Err(err) => {
            tracing::warn!(domain = %domain, error = %err, "cannot remove stale command bindings");
            return Ok(());
        }
    };
    for row in rows.iter().filter(|r| r.destination == queue) {
        let Some(wanted) = changed.iter().find(|c| c.routing_key == row.routing_key) else {
            continue;
        };
        if command_of(&row.routing_key, &row.arguments).as_ref() == Some(*wanted) {
            continue;
        }
        unbind_one(
            channel,
            &queue,
            &row.routing_key,
            field_table(&row.arguments),
        )
        .await?;
    }
    Ok(())
}

/// Unbinds `keys` from `domain`'s queue: the bindings this process made,
/// a bare one, and any other the broker lists for them.
pub(super) async fn unbind(shared: &Shared, domain: &str, keys: &[String]) -> Result<(), BusError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut targets: Vec<(String, FieldTable)> = Vec::new();
    {
        let mut bound = shared.bound.lock();
        let mut known = bound.get_mut(domain);
        for key in keys {
            if let Some(c) = known.as_mut().and_then(|k| k.remove(key)) {
                targets.push((key.clone(), command_arguments(&c)));
            }
            targets.push((key.clone(), FieldTable::default()));
        }
    }
    let link = shared.link()?;
    let queue = domain_queue(domain);
    // A set: a domain may bind 1,000 keys.
    let keys: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    match shared.management.source_bindings(COMMANDS_EXCHANGE).await {
        Ok(rows) => targets.extend(
            rows.into_iter()
                .filter(|r| r.destination == queue && keys.contains(r.routing_key.as_str()))
                .map(|r| (r.routing_key, field_table(&r.arguments))),
        ),
        Err(err) => {
            tracing::warn!(domain = %domain, error = %err, "unbinding only the bindings made here")
        }
    }
    let channel = link.conn.create_channel().await.map_err(unavailable)?;
    // Unbinding what is not bound succeeds: duplicates cost a round trip.
    for (key, arguments) in targets {
        unbind_one(&channel, &queue, &key, arguments).await?;
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(())
}

async fn unbind_one(
    channel: &Channel,
    queue: &str,
    key: &str,
    arguments: FieldTable,
) -> Result<(), BusError> {
    channel
        .queue_unbind(
            queue.into(),
            COMMANDS_EXCHANGE.into(),
            key.into(),
            arguments,
        )
        .await
        .map_err(unavailable)
}
