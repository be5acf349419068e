//! Host-side bindings of the `handler` world in `wit/`.
#![allow(missing_docs, unreachable_pub, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: async },
    exports: { default: async },
});
