//! The [`EventReactor`] trait and [`export_reactor!`](crate::export_reactor!),
//! which exports one as the component's `event-reactor`.

use std::marker::PhantomData;

use crate::reactor_bindings::exports::parallel_you::handler::event_reactor;
use crate::{CommandToSend, DeliveredEvent, HandlerError, Reactor, ReactorManifest};

/// A reactor: declares its subscriptions and queries through a
/// [`Reactor`].
///
/// Export it with [`export_reactor!`](crate::export_reactor!).
pub trait EventReactor {
    /// The reactor's description. Called once to build the manifest, then
    /// once per event or query (each runs in a fresh instance): keep it
    /// cheap.
    fn reactor() -> Reactor;
}

/// Glue between an [`EventReactor`] and the generated `event-reactor`
/// export. Used by [`export_reactor!`](crate::export_reactor!); not meant
/// to be named directly.
#[doc(hidden)]
pub struct ReactorExport<R>(PhantomData<R>);

impl<R: EventReactor> event_reactor::Guest for ReactorExport<R> {
    fn manifest() -> ReactorManifest {
        R::reactor().manifest()
    }

    fn on_event(event: DeliveredEvent) -> Result<Vec<CommandToSend>, HandlerError> {
        R::reactor().on_event(event)
    }

    fn query(name: String, params: String) -> Result<String, HandlerError> {
        R::reactor()
            .answer(&name, &params)
            .map_err(HandlerError::from)
    }
}

/// Exports an [`EventReactor`] as the component's `event-reactor`, making
/// it a component of world `reactor` (`wit/reactor.wit`).
///
/// Use it once, at the top level of the reactor crate (a `cdylib` built for
/// `wasm32-wasip2`), instead of [`export_handler!`](crate::export_handler!):
///
/// ```no_run
/// use parallel_you_sdk::{CommandToSend, Delivered, Error, EventReactor, Reactor, ReactorCtx};
///
/// struct Seen;
///
/// impl EventReactor for Seen {
///     fn reactor() -> Reactor {
///         Reactor::new("seen", "0.1.0").on("#", seen)
///     }
/// }
///
/// fn seen(ctx: &ReactorCtx, ev: Delivered<serde_json::Value>) -> Result<Vec<CommandToSend>, Error> {
///     ctx.collection::<u64>("last").put(ev.routing_key(), &ev.timestamp_ms(), None)?;
///     Ok(vec![])
/// }
///
/// parallel_you_sdk::export_reactor!(Seen);
/// ```
#[macro_export]
macro_rules! export_reactor {
    ($reactor:ty) => {
        #[doc(hidden)]
        type __ParallelYouReactorExport = $crate::ReactorExport<$reactor>;
        $crate::reactor_bindings::__export_reactor_bindings!(
            __ParallelYouReactorExport with_types_in $crate::reactor_bindings
        );
    };
}
