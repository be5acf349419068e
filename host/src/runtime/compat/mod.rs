//! Components built against an earlier 0.1.x contract.
//!
//! Imports link as they are (wasmtime serves a `@0.1.0` import with the
//! host's later 0.1.y), but an export whose records changed shape must be
//! called through bindings of the version it was built against, with its
//! values converted at the edge:
//!
//! | built against | what differs | driven through |
//! |---|---|---|
//! | handler 0.1.0–0.1.2 | `manifest` has no `indexes`, and what 0.1.3 lacks | [`crate::bindings::v0_1_2`] |
//! | handler 0.1.3 | `meta` has no `user-id`, `command-info` no `internal` | [`crate::bindings::v0_1_3`] |
//! | reactor 0.1.2–0.1.3 | `meta` (in `delivered-event`) has no `user-id` | [`crate::bindings::v0_1_3::reactor`] |
//!
//! `handler.rs` and `reactor.rs` hold each world's conversions. An old
//! handler's commands are never internal; an old component never sees a
//! user id.

mod handler;
mod reactor;

pub(crate) use handler::{AnyHandlerPre, HandlerInstance};
pub(crate) use reactor::AnyReactorPre;

/// The contract a component was built against, from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contract {
    /// 0.1.0 to 0.1.2.
    Before013,
    /// 0.1.3.
    V013,
    /// 0.1.4 or later (or unversioned): the current bindings.
    Current,
}

/// The exports that make a component a handler or a reactor, before
/// `@version`.
const WORLD_EXPORTS: [&str; 2] = [
    "parallel-you:handler/command-handler@",
    "parallel-you:handler/event-reactor@",
];

impl Contract {
    /// The contract named by a component export `export`, if it is a
    /// handler's or reactor's export of a 0.1.x version.
    fn of_export(export: &str) -> Option<Self> {
        let version = WORLD_EXPORTS
            .iter()
            .find_map(|prefix| export.strip_prefix(prefix))?;
        let mut parts = version.split(['.', '-', '+']);
        let (Some("0"), Some("1"), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        Some(match patch.parse::<u32>().ok()? {
            0..=2 => Contract::Before013,
            3 => Contract::V013,
            _ => Contract::Current,
        })
    }

    /// The contract of a component with these export names.
    pub(crate) fn of_exports<'a>(exports: impl IntoIterator<Item = &'a str>) -> Self {
        exports
            .into_iter()
            .find_map(Self::of_export)
            .unwrap_or(Contract::Current)
    }
}

#[cfg(test)]
mod tests {
    use super::Contract;

    #[test]
    fn contracts_are_recognised_by_their_export() {
        let of = |name: &str| Contract::of_exports([name]);
        for old in ["0.1.0", "0.1.1", "0.1.2", "0.1.2-rc1"] {
            let name = format!("parallel-you:handler/command-handler@{old}");
            assert_eq!(of(&name), Contract::Before013, "{name}");
        }
        for (name, contract) in [
            ("parallel-you:handler/command-handler@0.1.3", Contract::V013),
            ("parallel-you:handler/event-reactor@0.1.3", Contract::V013),
            (
                "parallel-you:handler/event-reactor@0.1.2",
                Contract::Before013,
            ),
            (
                "parallel-you:handler/command-handler@0.1.4",
                Contract::Current,
            ),
            (
                "parallel-you:handler/command-handler@0.1.10",
                Contract::Current,
            ),
            ("parallel-you:handler/command-handler", Contract::Current),
            ("wasi:cli/run@0.2.0", Contract::Current),
        ] {
            assert_eq!(of(name), contract, "{name}");
        }
    }
}
