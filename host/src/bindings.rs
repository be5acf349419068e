//! Host-side bindings of the `handler` world in `wit/`.
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
