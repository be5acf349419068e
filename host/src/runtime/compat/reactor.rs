//! Reactors of every 0.1.x contract behind one type. Reactors came at
//! 0.1.2, and their records kept one shape until 0.1.4 added `user-id` to
//! the `meta` of a delivered event; so one frozen set of bindings, 0.1.3's,
//! drives all older ones.

use std::future::Future;
use std::pin::Pin;

use wasmtime::Store;

use super::super::call::Instantiate;
use super::handler::old_meta;
use super::Contract;
use crate::bindings::{self, v0_1_3, ReactorPre};
use crate::sandbox::Sandbox;

use bindings::parallel_you::handler::types;
use bindings::reactor::parallel_you::handler::reactor_types as rt;
use v0_1_3::reactor::parallel_you::handler::reactor_types as old_rt;

/// A reactor pre-linked, by the contract it was built against.
pub(crate) enum AnyReactorPre {
    /// 0.1.4 and later.
    Current(ReactorPre<Sandbox>),
    /// 0.1.2 and 0.1.3.
    V013(v0_1_3::reactor::ReactorPre<Sandbox>),
}

impl AnyReactorPre {
    /// The reactor bindings of `contract` over `pre`.
    pub(crate) fn new(
        contract: Contract,
        pre: wasmtime::component::InstancePre<Sandbox>,
    ) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::Current => AnyReactorPre::Current(ReactorPre::new(pre)?),
            Contract::Before013 | Contract::V013 => {
                AnyReactorPre::V013(v0_1_3::reactor::ReactorPre::new(pre)?)
            }
        })
    }
}

/// One instance of a reactor, by its contract.
pub(crate) enum ReactorInstance {
    /// 0.1.4 and later.
    Current(bindings::Reactor),
    /// 0.1.2 and 0.1.3.
    V013(v0_1_3::reactor::Reactor),
}

fn handler_error(e: v0_1_3::parallel_you::handler::types::HandlerError) -> types::HandlerError {
    types::HandlerError {
        code: e.code,
        message: e.message,
        context: e.context,
    }
}

impl ReactorInstance {
    /// Calls the component's `manifest`.
    pub(in crate::runtime) async fn call_manifest(
        &self,
        store: &mut Store<Sandbox>,
    ) -> wasmtime::Result<rt::ReactorManifest> {
        match self {
            ReactorInstance::Current(r) => {
                r.parallel_you_handler_event_reactor()
                    .call_manifest(store)
                    .await
            }
            ReactorInstance::V013(r) => {
                let m = r
                    .parallel_you_handler_event_reactor()
                    .call_manifest(store)
                    .await?;
                Ok(rt::ReactorManifest {
                    domain: m.domain,
                    version: m.version,
                    subscribes: m.subscribes,
                    sends: m.sends,
                    queries: m
                        .queries
                        .into_iter()
                        .map(|q| rt::QueryInfo {
                            name: q.name,
                            summary: q.summary,
                            params_schema: q.params_schema,
                        })
                        .collect(),
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
        }
    }

    /// Calls the component's `on-event` with `event`.
    pub(in crate::runtime) async fn call_on_event(
        &self,
        store: &mut Store<Sandbox>,
        event: &rt::DeliveredEvent,
    ) -> wasmtime::Result<Result<Vec<rt::CommandToSend>, types::HandlerError>> {
        match self {
            ReactorInstance::Current(r) => {
                r.parallel_you_handler_event_reactor()
                    .call_on_event(store, event)
                    .await
            }
            ReactorInstance::V013(r) => {
                let old = old_rt::DeliveredEvent {
                    meta: old_meta!(v0_1_3::parallel_you::handler::types, event.meta),
                    body: event.body.clone(),
                };
                let result = r
                    .parallel_you_handler_event_reactor()
                    .call_on_event(store, &old)
                    .await?;
                Ok(result
                    .map(|commands| {
                        commands
                            .into_iter()
                            .map(|c| rt::CommandToSend {
                                routing_key: c.routing_key,
                                body: c.body,
                            })
                            .collect()
                    })
                    .map_err(handler_error))
            }
        }
    }

    /// Calls the component's `query`.
    pub(in crate::runtime) async fn call_query(
        &self,
        store: &mut Store<Sandbox>,
        name: &str,
        params: &str,
    ) -> wasmtime::Result<Result<String, types::HandlerError>> {
        match self {
            ReactorInstance::Current(r) => {
                r.parallel_you_handler_event_reactor()
                    .call_query(store, name, params)
                    .await
            }
            ReactorInstance::V013(r) => Ok(r
                .parallel_you_handler_event_reactor()
                .call_query(store, name, params)
                .await?
                .map_err(handler_error)),
        }
    }
}

impl Instantiate for AnyReactorPre {
    type Bound = ReactorInstance;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<Sandbox>,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<Self::Bound>> + Send + 'a>> {
        Box::pin(async move {
            Ok(match self {
                AnyReactorPre::Current(pre) => {
                    ReactorInstance::Current(pre.instantiate_async(store).await?)
                }
                AnyReactorPre::V013(pre) => {
                    ReactorInstance::V013(pre.instantiate_async(store).await?)
                }
            })
        })
    }
}
