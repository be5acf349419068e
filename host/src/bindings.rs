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
            "parallel-you:handler/emitter": crate::bindings::parallel_you::handler::emitter,
            "parallel-you:handler/scheduler": crate::bindings::parallel_you::handler::scheduler,
            "parallel-you:handler/log": crate::bindings::parallel_you::handler::log,
        },
    });
}

pub use reactor::{Reactor, ReactorPre};

/// The `handler` world as frozen at 0.1.2 (`host/wit/0.1.2`), for
/// components built against 0.1.0 to 0.1.2: their `manifest` lacks
/// `indexes`, so the current bindings cannot call them. Only the export is
/// used; its imports are served by the current world's implementations
/// (wasmtime links a 0.1.x import to the host's later 0.1.y).
pub mod v0_1_2 {
    wasmtime::component::bindgen!({
        path: "wit/0.1.2",
        world: "handler",
        imports: { default: async },
        exports: { default: async },
    });
}

/// Both worlds as frozen at 0.1.3 (`host/wit/0.1.3`), for components
/// built against 0.1.0 to 0.1.3 (handlers from 0.1.3; reactors, which
/// came at 0.1.2, from any): their `meta` has no `user-id` and their
/// `command-info` no `internal`. Only the exports are used, as for
/// [`v0_1_2`].
pub mod v0_1_3 {
    wasmtime::component::bindgen!({
        path: "wit/0.1.3",
        world: "handler",
        imports: { default: async },
        exports: { default: async },
    });

    /// The `reactor` world at 0.1.3, sharing this version's types.
    pub mod reactor {
        wasmtime::component::bindgen!({
            path: "wit/0.1.3",
            world: "reactor",
            imports: { default: async },
            exports: { default: async },
            with: {
                "parallel-you:handler/types": super::parallel_you::handler::types,
                "parallel-you:handler/store": super::parallel_you::handler::store,
                "parallel-you:handler/scheduler": super::parallel_you::handler::scheduler,
                "parallel-you:handler/log": super::parallel_you::handler::log,
            },
        });
    }
}
