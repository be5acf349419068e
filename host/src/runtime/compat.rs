//! Command handlers built against an earlier 0.1.x contract.
//!
//! From 0.1.3 a handler's `manifest` carries `indexes`; a component built
//! against 0.1.0 to 0.1.2 returns the record without it, which the current
//! bindings cannot read. Such a component is driven through the bindings
//! frozen at 0.1.2 ([`bindings::v0_1_2`]) and its values converted at the
//! edge: everything else (commands, events, errors, every import) has the
//! same shape in both.

use std::future::Future;
use std::pin::Pin;

use wasmtime::Store;

use super::call::Instantiate;
use crate::bindings::{self, v0_1_2, HandlerPre};
use crate::sandbox::Sandbox;

use bindings::parallel_you::handler::types;
use v0_1_2::parallel_you::handler::types as old;

/// The export that makes a component a command handler, before `@version`.
const HANDLER_EXPORT: &str = "parallel-you:handler/command-handler@";

/// Whether a component exporting `export` (a component export name) was
/// built against 0.1.0 to 0.1.2: its handler export names such a version.
pub(super) fn is_before_0_1_3(export: &str) -> bool {
    let Some(version) = export.strip_prefix(HANDLER_EXPORT) else {
        return false;
    };
    let mut parts = version.split(['.', '-', '+']);
    let (Some("0"), Some("1"), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    patch.parse::<u32>().is_ok_and(|p| p < 3)
}

/// A command handler pre-linked, by the contract it was built against.
pub(crate) enum AnyHandlerPre {
    /// 0.1.3 and later.
    Current(HandlerPre<Sandbox>),
    /// 0.1.0 to 0.1.2.
    V012(v0_1_2::HandlerPre<Sandbox>),
}

/// One instance of a command handler, by its contract.
pub(crate) enum HandlerInstance {
    /// 0.1.3 and later.
    Current(bindings::Handler),
    /// 0.1.0 to 0.1.2.
    V012(v0_1_2::Handler),
}

impl HandlerInstance {
    /// Calls the component's `manifest`; an old one's has no indexes.
    pub(super) async fn call_manifest(
        &self,
        store: &mut Store<Sandbox>,
    ) -> wasmtime::Result<types::Manifest> {
        match self {
            HandlerInstance::Current(h) => {
                h.parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await
            }
            HandlerInstance::V012(h) => {
                let m = h
                    .parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await?;
                Ok(types::Manifest {
                    domain: m.domain,
                    version: m.version,
                    commands: m
                        .commands
                        .into_iter()
                        .map(|c| types::CommandInfo {
                            routing_key: c.routing_key,
                            summary: c.summary,
                            body_schema: c.body_schema,
                        })
                        .collect(),
                    events: m.events,
                    indexes: Vec::new(),
                })
            }
        }
    }

    /// Calls the component's `handle` with `cmd`.
    pub(super) async fn call_handle(
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
            HandlerInstance::V012(h) => {
                let result = h
                    .parallel_you_handler_command_handler()
                    .call_handle(store, &old_command(cmd))
                    .await?;
                Ok(result
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
                    }))
            }
        }
    }
}

fn old_command(cmd: &types::Command) -> old::Command {
    let m = &cmd.meta;
    old::Command {
        meta: old::Meta {
            message_id: m.message_id.clone(),
            routing_key: m.routing_key.clone(),
            reply_channel: m.reply_channel.clone(),
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            session_id: m.session_id.clone(),
            timestamp_ms: m.timestamp_ms,
        },
        body: cmd.body.clone(),
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
                AnyHandlerPre::V012(pre) => {
                    HandlerInstance::V012(pre.instantiate_async(store).await?)
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_before_0_1_3;

    #[test]
    fn old_contracts_are_recognised_by_their_export() {
        for old in ["0.1.0", "0.1.1", "0.1.2", "0.1.2-rc1"] {
            let name = format!("parallel-you:handler/command-handler@{old}");
            assert!(is_before_0_1_3(&name), "{name}");
        }
        for current in [
            "parallel-you:handler/command-handler@0.1.3",
            "parallel-you:handler/command-handler@0.1.10",
            "parallel-you:handler/command-handler@0.2.0",
            "parallel-you:handler/command-handler",
            "parallel-you:handler/event-reactor@0.1.2",
            "wasi:cli/run@0.2.0",
        ] {
            assert!(!is_before_0_1_3(current), "{current}");
        }
    }
}
