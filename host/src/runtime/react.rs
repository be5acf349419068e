//! Running a reactor: one event in a fresh instance, or one query in a
//! fresh instance whose store is read-only. Same deadline and memory cap as
//! a handler's command.

use std::sync::Arc;

use tracing::Instrument;

use super::call::{guest_span, Slot};
use super::classify::{bounded, handler_error, to_wit_event};
use super::{LoadedHandler, Runtime};
use crate::sandbox::Sandbox;
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::store::{Op, Store as DocumentStore};

/// A command a reactor returned, not yet checked.
#[derive(Debug)]
pub(crate) struct Wanted {
    pub(crate) routing_key: String,
    pub(crate) body: String,
}

/// How one event ended inside a reactor's sandbox.
#[derive(Debug)]
pub(crate) struct ReactOutcome {
    /// Its changes to the store (and timers), in call order.
    pub(crate) ops: Vec<Op>,
    /// The events of its own domain it emitted, checked, in order.
    pub(crate) emitted: Vec<Envelope>,
    /// The commands it returned, or why there are none.
    pub(crate) result: Result<Vec<Wanted>, ErrorBody>,
}

impl Runtime {
    /// Runs `on-event` for `event` in a fresh instance of `reactor`.
    pub(crate) async fn run_event(
        &self,
        reactor: &LoadedHandler,
        event: &Envelope,
        store: Arc<dyn DocumentStore>,
    ) -> ReactOutcome {
        let Some(pre) = reactor.pre.reactor() else {
            return ReactOutcome {
                ops: Vec::new(),
                emitted: Vec::new(),
                result: Err(not_a_reactor(reactor)),
            };
        };
        let sandbox = Sandbox::new(
            reactor.domain.clone(),
            store,
            Some(event.meta.clone()),
            self.clock.clone(),
            self.output_limits(),
            self.limits.memory,
        )
        .with_grants(&reactor.grants)
        .for_reactor();
        let wit_event = to_wit_event(event);
        let called = self
            .in_sandbox(
                pre,
                Slot::Fresh(Box::new(sandbox)),
                reactor.deadline(self),
                move |r, store| Box::pin(async move { r.call_on_event(store, &wit_event).await }),
            )
            .instrument(guest_span(&reactor.domain, "on-event"))
            .await;
        let max_error = self.limits.error_body();
        let Some(mut wasm_store) = called.store else {
            return ReactOutcome {
                ops: Vec::new(),
                emitted: Vec::new(),
                result: Err(bounded(
                    called.result.err().unwrap_or_else(|| {
                        ErrorBody::new(ErrorCode::Trap, "the instance was lost")
                    }),
                    max_error,
                )),
            };
        };
        let sandbox = wasm_store.data_mut();
        let result = match called.result {
            Err(e) => Err(e),
            Ok(Err(he)) => Err(handler_error(he, sandbox.store_unavailable)),
            Ok(Ok(commands)) => Ok(commands
                .into_iter()
                .map(|c| Wanted {
                    routing_key: c.routing_key,
                    body: c.body,
                })
                .collect()),
        };
        ReactOutcome {
            ops: sandbox.unit.take_ops(),
            emitted: std::mem::take(&mut sandbox.emitted),
            result: result.map_err(|e| bounded(e, max_error)),
        }
    }

    /// Runs the query `name` of `reactor` with `params` (a JSON object's
    /// text, already checked) in a fresh instance over a read-only view of
    /// `store`; returns its JSON text.
    pub(crate) async fn run_query(
        &self,
        reactor: &LoadedHandler,
        name: &str,
        params: &str,
        store: Arc<dyn DocumentStore>,
    ) -> Result<String, ErrorBody> {
        let Some(pre) = reactor.pre.reactor() else {
            return Err(not_a_reactor(reactor));
        };
        let sandbox = Sandbox::new(
            reactor.domain.clone(),
            store,
            None,
            self.clock.clone(),
            self.output_limits(),
            self.limits.memory,
        )
        .with_grants(&reactor.grants)
        .read_only();
        let (name, params) = (name.to_owned(), params.to_owned());
        let called = self
            .in_sandbox(
                pre,
                Slot::Fresh(Box::new(sandbox)),
                reactor.deadline(self),
                move |r, store| Box::pin(async move { r.call_query(store, &name, &params).await }),
            )
            .await;
        let unavailable = called
            .store
            .as_ref()
            .is_some_and(|s| s.data().store_unavailable);
        match called.result {
            Err(e) => Err(e),
            Ok(Err(he)) => Err(handler_error(he, unavailable)),
            Ok(Ok(json)) => Ok(json),
        }
    }
}

fn not_a_reactor(component: &LoadedHandler) -> ErrorBody {
    ErrorBody {
        code: Code::Handler("not_found".to_owned()),
        message: format!(
            "{:?} is a command handler, not a reactor",
            component.manifest.domain
        ),
        context: serde_json::Value::Null,
        command: None,
    }
}
