//! The standard WASI interfaces a sandbox serves: WASI 0.2 itself (no
//! files, environment or sockets), `wasi:http` through its grant's hooks,
//! and `wasi:config` from its grant's values.

use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::Sandbox;
use crate::grants::ConfigValues;

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl Sandbox {
    /// What `wasi:config/store` answers from: the grant's values, or none.
    pub(crate) fn config_view(&mut self) -> wasmtime_wasi_config::WasiConfig<'_> {
        static NONE: std::sync::LazyLock<ConfigValues> =
            std::sync::LazyLock::new(ConfigValues::default);
        self.config.as_deref().unwrap_or(&NONE).view()
    }
}
