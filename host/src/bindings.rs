//! Host-side bindings of the `handler` and `reactor` worlds in `wit/`.
#![allow(missing_docs, unreachable_pub, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    // `emit` can trap: the first emit past the event cap stops the guest.
    imports: {
        "parallel-you:handler/emitter.emit": async | trappable,
        default: async,
    },
    exports: { default: async },
});

/// The `reactor` world. Its imports are the handler world's own modules
/// (`with`), so one set of host implementations (the sandbox's) and one
/// linker serve both worlds.
pub mod reactor {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "reactor",
        imports: { default: async },
        exports: { default: async },
        with: {
            "parallel-you:handler/types": crate::bindings::parallel_you::handler::types,
            "parallel-you:handler/store": crate::bindings::parallel_you::handler::store,
            "parallel-you:handler/scheduler": crate::bindings::parallel_you::handler::scheduler,
            "parallel-you:handler/log": crate::bindings::parallel_you::handler::log,
        },
    });
}

pub use reactor::{Reactor, ReactorPre};
