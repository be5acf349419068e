//! The [`Handler`] trait and [`export_handler!`], which exports one as the
//! component's `command-handler`.

use std::marker::PhantomData;

use crate::bindings::exports::parallel_you::handler::command_handler;
use crate::{Command, Event, HandlerError, Router};

/// A command handler: declares its commands through a [`Router`].
///
/// Export it with [`export_handler!`](crate::export_handler!).
pub trait Handler {
    /// The handler's router. Called once to build the manifest, then once
    /// per command (each command runs in a fresh instance).
    fn router() -> Router;
}

/// Glue between a [`Handler`] and the generated `command-handler` export.
/// Used by [`export_handler!`](crate::export_handler!); not meant to be
/// named directly.
#[doc(hidden)]
pub struct Export<H>(PhantomData<H>);

impl<H: Handler> command_handler::Guest for Export<H> {
    fn manifest() -> command_handler::HandlerManifest {
        H::router().manifest()
    }

    fn handle(cmd: Command) -> Result<Vec<Event>, HandlerError> {
        H::router().handle(cmd)
    }
}

/// Exports a [`Handler`] as the component's `command-handler`.
///
/// Use it once, at the top level of the handler crate (a `cdylib` built for
/// `wasm32-wasip2`):
///
/// ```no_run
/// use parallel_you_sdk::{Ctx, Error, Event, Handler, Router};
///
/// struct Ping;
///
/// impl Handler for Ping {
///     fn router() -> Router {
///         Router::new("ping", "0.1.0").command("ping.ping", "Answer", ping)
///     }
/// }
///
/// fn ping(_ctx: &Ctx, _body: serde::de::IgnoredAny) -> Result<Vec<Event>, Error> {
///     Ok(vec![Event::raw("ping.ponged", "{}")])
/// }
///
/// parallel_you_sdk::export_handler!(Ping);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        #[doc(hidden)]
        type __ParallelYouExport = $crate::Export<$handler>;
        $crate::bindings::__export_handler_bindings!(
            __ParallelYouExport with_types_in $crate::bindings
        );
    };
}
