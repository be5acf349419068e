//! Command handlers of every 0.1.x contract behind one type.

use std::future::Future;
use std::pin::Pin;

use wasmtime::Store;

use super::super::call::Instantiate;
use super::Contract;
use crate::bindings::{self, v0_1_2, v0_1_3, HandlerPre};
use crate::sandbox::Sandbox;

use bindings::parallel_you::handler::types;

/// A command handler pre-linked, by the contract it was built against.
pub(crate) enum AnyHandlerPre {
    /// 0.1.4 and later.
    Current(HandlerPre<Sandbox>),
    /// 0.1.3.
    V013(v0_1_3::HandlerPre<Sandbox>),
    /// 0.1.0 to 0.1.2.
    V012(v0_1_2::HandlerPre<Sandbox>),
}

impl AnyHandlerPre {
    /// The handler bindings of `contract` over `pre`.
    pub(crate) fn new(
        contract: Contract,
        pre: wasmtime::component::InstancePre<Sandbox>,
    ) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::Before013 => AnyHandlerPre::V012(v0_1_2::HandlerPre::new(pre)?),
            Contract::V013 => AnyHandlerPre::V013(v0_1_3::HandlerPre::new(pre)?),
            Contract::Current => AnyHandlerPre::Current(HandlerPre::new(pre)?),
        })
    }
}

/// One instance of a command handler, by its contract.
pub(crate) enum HandlerInstance {
    /// 0.1.4 and later.
    Current(bindings::Handler),
    /// 0.1.3.
    V013(v0_1_3::Handler),
    /// 0.1.0 to 0.1.2.
    V012(v0_1_2::Handler),
}

/// An old contract's `command-info` list as the current one: never
/// internal.
macro_rules! commands {
    ($commands:expr) => {
        $commands
            .into_iter()
            .map(|c| types::CommandInfo {
                routing_key: c.routing_key,
                summary: c.summary,
                body_schema: c.body_schema,
                internal: false,
            })
            .collect()
    };
}

/// An old contract's `handle` result as the current one (the records
/// have one shape in every 0.1.x).
macro_rules! handled {
    ($result:expr) => {
        $result
            .map(|events| {
                events
                    .into_iter()
                    .map(|e| types::Event {
                        routing_key: e.routing_key,
                        body: e.body,
                    })
                    .collect()
            })
            .map_err(|e| types::HandlerError {
                code: e.code,
                message: e.message,
                context: e.context,
            })
    };
}

/// The current meta as an old contract's `$types::Meta`: without the user id.
macro_rules! old_meta {
    ($types:path, $meta:expr) => {{
        use $types as old;
        let m = &$meta;
        old::Meta {
            message_id: m.message_id.clone(),
            routing_key: m.routing_key.clone(),
            reply_channel: m.reply_channel.clone(),
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            session_id: m.session_id.clone(),
            timestamp_ms: m.timestamp_ms,
        }
    }};
}
pub(super) use old_meta;

/// The current command as an old contract's.
macro_rules! old_command {
    ($types:path, $cmd:expr) => {{
        use $types as old;
        old::Command {
            meta: old_meta!($types, $cmd.meta),
            body: $cmd.body.clone(),
        }
    }};
}

impl HandlerInstance {
    /// Calls the component's `manifest`; an old one's has no indexes
    /// (before 0.1.3) and no internal commands (before 0.1.4).
    pub(in crate::runtime) async fn call_manifest(
        &self,
        store: &mut Store<Sandbox>,
    ) -> wasmtime::Result<types::Manifest> {
        match self {
            HandlerInstance::Current(h) => {
                h.parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await
            }
            HandlerInstance::V013(h) => {
                let m = h
                    .parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await?;
                Ok(types::Manifest {
                    domain: m.domain,
                    version: m.version,
                    commands: commands!(m.commands),
                    events: m.events,
                    indexes: m
                        .indexes
                        .into_iter()
                        .map(|i| types::IndexInfo {
                            collection: i.collection,
                            fields: i.fields,
                        })
                        .collect(),
                })
            }
            HandlerInstance::V012(h) => {
                let m = h
                    .parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await?;
                Ok(types::Manifest {
                    domain: m.domain,
                    version: m.version,
                    commands: commands!(m.commands),
                    events: m.events,
                    indexes: Vec::new(),
                })
            }
        }
    }

    /// Calls the component's `handle` with `cmd`.
    pub(in crate::runtime) async fn call_handle(
        &self,
        store: &mut Store<Sandbox>,
        cmd: &types::Command,
    ) -> wasmtime::Result<Result<Vec<types::Event>, types::HandlerError>> {
        match self {
            HandlerInstance::Current(h) => {
                h.parallel_you_handler_command_handler()
                    .call_handle(store, cmd)
                    .await
            }
            HandlerInstance::V013(h) => {
                let old = old_command!(v0_1_3::parallel_you::handler::types, cmd);
                let result = h
                    .parallel_you_handler_command_handler()
                    .call_handle(store, &old)
                    .await?;
                Ok(handled!(result))
            }
            HandlerInstance::V012(h) => {
                let old = old_command!(v0_1_2::parallel_you::handler::types, cmd);
                let result = h
                    .parallel_you_handler_command_handler()
                    .call_handle(store, &old)
                    .await?;
                Ok(handled!(result))
            }
        }
    }
}

impl Instantiate for AnyHandlerPre {
    type Bound = HandlerInstance;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<Sandbox>,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<Self::Bound>> + Send + 'a>> {
        Box::pin(async move {
            Ok(match self {
                AnyHandlerPre::Current(pre) => {
                    HandlerInstance::Current(pre.instantiate_async(store).await?)
                }
                AnyHandlerPre::V013(pre) => {
                    HandlerInstance::V013(pre.instantiate_async(store).await?)
                }
                AnyHandlerPre::V012(pre) => {
                    HandlerInstance::V012(pre.instantiate_async(store).await?)
                }
            })
        })
    }
}
