//! Config values and secrets a component reads through `wasi:config/store`.

use std::collections::BTreeMap;

use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The values granted to one component (config and secrets alike: the
/// guest cannot tell them apart; only listings do).
#[derive(Default)]
pub(crate) struct ConfigValues {
    vars: WasiConfigVariables,
    #[cfg(test)]
    map: BTreeMap<String, String>,
}

impl ConfigValues {
    pub(crate) fn new(values: BTreeMap<String, String>) -> Self {
        ConfigValues {
            vars: values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            #[cfg(test)]
            map: values,
        }
    }

    /// The view `wasi:config/store` is served from.
    pub(crate) fn view(&self) -> WasiConfig<'_> {
        WasiConfig::from(&self.vars)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.map.get(key).cloned()
    }
}
