//! Running one call in a sandbox: deadline, memory cap, warm or fresh
//! instance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};

use super::classify::{bounded, classify, handler_error, to_wit_command};
use super::{LoadedHandler, Runtime};
use crate::sandbox::Sandbox;
use crate::warm::{InstancePolicy, WarmInstance};
use parallel_you_core::envelope::Envelope;
use parallel_you_core::error::{ErrorBody, ErrorCode};
use parallel_you_core::store::{Op, Store as DocumentStore};

/// How one command ended inside the sandbox.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    /// Events the guest emitted while it ran, in order.
    pub(crate) emitted: Vec<Envelope>,
    /// Its changes to the store, in call order: to commit if it succeeded.
    pub(crate) ops: Vec<Op>,
    /// The returned events, or why there are none.
    pub(crate) result: Result<Vec<Envelope>, ErrorBody>,
}

impl Runtime {
    /// Runs one command in an instance of `handler`: a fresh one, or under
    /// [`InstancePolicy::Warm`] a parked one when there is one.
    pub(crate) async fn run(
        &self,
        handler: &LoadedHandler,
        cmd: &Envelope,
        store: Arc<dyn DocumentStore>,
    ) -> RunOutcome {
        // A body its schema refuses never reaches an instance.
        if let Err(err) = handler.schemas.check(cmd) {
            return RunOutcome {
                emitted: Vec::new(),
                ops: Vec::new(),
                result: Err(err),
            };
        }
        let max_idle = match self.policy_of(handler) {
            InstancePolicy::Fresh => None,
            InstancePolicy::Warm { max_idle } => Some(max_idle),
        };
        let slot = match max_idle.and_then(|_| handler.warm.take()) {
            Some(mut warm) => {
                warm.store.data_mut().begin_command(cmd.meta.clone());
                Slot::Warm(warm.store, warm.instance)
            }
            None => Slot::Fresh(Box::new(
                Sandbox::new(
                    handler.domain.clone(),
                    store,
                    Some(cmd.meta.clone()),
                    self.clock.clone(),
                    self.output_limits(),
                    self.limits.memory,
                )
                .with_grants(&handler.grants),
            )),
        };
        let wit_cmd = to_wit_command(cmd);
        let Some(pre) = handler.pre.handler() else {
            return RunOutcome {
                emitted: Vec::new(),
                ops: Vec::new(),
                result: Err(ErrorBody::new(
                    ErrorCode::UnknownRoutingKey,
                    format!("{:?} is a reactor: it takes no commands", handler.domain),
                )),
            };
        };
        let called = self
            .in_sandbox(pre, slot, handler.deadline(self), move |h, store| {
                Box::pin(async move { h.call_handle(store, &wit_cmd).await })
            })
            .instrument(guest_span(&handler.domain, "handle"))
            .await;
        // Error events have a cap of their own, within the event body cap.
        let max_error = self.limits.error_body();
        let Some(mut wasm_store) = called.store else {
            return RunOutcome {
                emitted: Vec::new(),
                ops: Vec::new(),
                result: called
                    .result
                    .and_then(|_| Err(ErrorBody::new(ErrorCode::Trap, "the instance was lost")))
                    .map_err(|e| bounded(e, max_error)),
            };
        };
        let sandbox = wasm_store.data_mut();
        let result = match called.result {
            Err(e) => Err(e),
            Ok(Err(he)) => Err(handler_error(he, sandbox.store_unavailable)),
            Ok(Ok(events)) => {
                let mut out = Vec::with_capacity(events.len());
                let mut failure = None;
                for ev in events {
                    match sandbox.check_event(&cmd.meta, ev) {
                        Ok(env) => out.push(env),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                match failure {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            }
        };
        let emitted = std::mem::take(&mut sandbox.emitted);
        let ops = sandbox.unit.take_ops();
        // Only an instance whose call returned is healthy: one that trapped,
        // timed out or hit the memory cap has no `instance` here and is
        // dropped with its store (poisoned).
        if let (Some(max_idle), Some(instance)) = (max_idle, called.instance) {
            handler.warm.park(
                WarmInstance {
                    store: wasm_store,
                    instance,
                },
                max_idle,
            );
        }
        RunOutcome {
            emitted,
            ops,
            result: result.map_err(|e| bounded(e, max_error)),
        }
    }

    /// Runs `call` under the deadline and memory cap in a fresh instance of
    /// `pre` (`Slot::Fresh`) or a parked one (`Slot::Warm`), and classifies
    /// any failure.
    pub(super) async fn in_sandbox<P, R, F>(
        &self,
        pre: &P,
        slot: Slot<P::Bound>,
        deadline: Duration,
        call: F,
    ) -> Called<R, P::Bound>
    where
        P: Instantiate,
        R: Send,
        F: for<'a> FnOnce(
                &'a P::Bound,
                &'a mut Store<Sandbox>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
            > + Send,
    {
        let Ok(_permit) = self.instances.acquire().await else {
            return Called {
                result: Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the runtime is shutting down",
                )),
                store: None,
                instance: None,
            };
        };
        let _running = self.ticker.running();
        let started = Instant::now();
        let (mut store, parked) = match slot {
            Slot::Fresh(sandbox) => {
                let mut store = Store::new(&self.engine, *sandbox);
                store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
                (store, None)
            }
            Slot::Warm(store, instance) => (store, Some(instance)),
        };
        store.set_epoch_deadline(1);
        // Yield to the executor at every tick, so a busy guest never holds a
        // worker thread, and stop it once its wall-clock deadline has passed.
        store.epoch_deadline_callback(move |mut ctx| {
            if started.elapsed() >= deadline {
                ctx.data_mut().timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        // A guest blocked in a host call is not interrupted by epochs; this
        // outer timeout covers that case.
        let outer = deadline + Duration::from_secs(1);
        let result = tokio::time::timeout(outer, async {
            let instance = match parked {
                Some(instance) => instance,
                None => pre.instantiate(&mut store).await?,
            };
            let r = call(&instance, &mut store).await?;
            Ok::<_, wasmtime::Error>((r, instance))
        })
        .await;
        match result {
            Err(_) => Called {
                result: Err(ErrorBody::new(
                    ErrorCode::Timeout,
                    format!(
                        "the handler did not finish within {} ms",
                        deadline.as_millis()
                    ),
                )),
                store: None,
                instance: None,
            },
            Ok(Ok((r, instance))) => Called {
                result: Ok(r),
                store: Some(store),
                instance: Some(instance),
            },
            Ok(Err(e)) => Called {
                result: Err(classify(&e, store.data(), deadline)),
                store: Some(store),
                instance: None,
            },
        }
    }
}

/// The span of one call into a guest (`export`: `handle`, `on-event`),
/// a child of the command's or event's: the guest's `log` lines are its
/// events, so an OpenTelemetry export shows them on it.
pub(super) fn guest_span(domain: &str, export: &str) -> tracing::Span {
    tracing::info_span!(
        "guest",
        otel.name = %format_args!("{export} {domain}"),
        otel.kind = "internal",
        pyou.domain = %domain,
        pyou.export = %export,
    )
}

/// Where a call runs: a new instance around this sandbox, or a parked one
/// (its store and instance).
pub(super) enum Slot<B> {
    Fresh(Box<Sandbox>),
    Warm(Store<Sandbox>, B),
}

/// What [`Runtime::in_sandbox`] hands back.
pub(super) struct Called<R, B> {
    pub(super) result: Result<R, ErrorBody>,
    /// The store, unless the call had to be abandoned at the outer timeout.
    pub(super) store: Option<Store<Sandbox>>,
    /// The instance, only if the call returned: it may serve again.
    instance: Option<B>,
}

/// A component pre-linked for one world, which instantiates into that
/// world's bindings.
pub(super) trait Instantiate: Sync {
    /// The world's bindings of one instance.
    type Bound: Send + Sync;
    /// A new instance in `store`.
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<Sandbox>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = wasmtime::Result<Self::Bound>> + Send + 'a>,
    >;
}
