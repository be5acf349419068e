//! The typed command bodies: what each command accepts (unknown fields
//! refused). `schema.rs` publishes the same shapes as JSON Schemas.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::model::{Energy, Kind, State};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSaga {
    pub(crate) id: Option<String>,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) notes: String,
    pub(crate) priority: Option<u32>,
    pub(crate) quantum: Option<String>,
}

/// `thread.story.create` and `thread.task.create`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWork {
    pub(crate) id: Option<String>,
    pub(crate) saga_id: Option<String>,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) notes: String,
    pub(crate) priority: Option<u32>,
    pub(crate) quantum: Option<String>,
    pub(crate) energy: Option<Energy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Update {
    pub(crate) id: String,
    pub(crate) title: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) priority: Option<u32>,
    /// Absent: unchanged; `null`: follow the saga again (or the default);
    /// a string: the thread's own quantum.
    #[serde(default, deserialize_with = "present")]
    pub(crate) quantum: Option<Option<String>>,
    pub(crate) energy: Option<Energy>,
    pub(crate) expected_version: Option<u64>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`,
/// through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    pub(crate) id: String,
    pub(crate) expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Block {
    pub(crate) id: String,
    pub(crate) reason: String,
    pub(crate) expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Delete {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) cascade: bool,
    pub(crate) expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Get {
    pub(crate) id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct List {
    pub(crate) text: Option<String>,
    pub(crate) kind: Option<Kind>,
    pub(crate) state: Option<State>,
    #[serde(default)]
    pub(crate) archived: Archived,
    pub(crate) saga_id: Option<String>,
    pub(crate) sprint_id: Option<String>,
    pub(crate) limit: Option<usize>,
    /// The `next` of the previous page's answer.
    pub(crate) after: Option<String>,
}

/// Which threads `thread.list` shows by their archived flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Archived {
    /// `false` (the default): only threads that are not archived.
    #[default]
    Hide,
    /// `true`: only the archive.
    Only,
    /// `"any"`: both.
    Any,
}

impl<'de> Deserialize<'de> for Archived {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(Archived::Hide),
            Value::Bool(true) => Ok(Archived::Only),
            Value::String(s) if s == "any" => Ok(Archived::Any),
            other => Err(serde::de::Error::custom(format!(
                "`archived` must be false (the default: hide archived threads), true (only archived ones) or \"any\", not {other}"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expire {
    pub(crate) id: String,
    pub(crate) run: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSprint {
    pub(crate) id: Option<String>,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) goal: String,
}

/// `thread.sprint.update`: what is given changes, the rest stays.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSprint {
    pub(crate) id: String,
    pub(crate) title: Option<String>,
    pub(crate) goal: Option<String>,
    pub(crate) expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SprintStory {
    pub(crate) sprint_id: String,
    pub(crate) story_id: String,
    /// The story's version.
    pub(crate) expected_version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloseSprint {
    pub(crate) id: String,
    /// Where the unfinished stories go; none: the backlog.
    pub(crate) next_sprint_id: Option<String>,
    pub(crate) expected_version: Option<u64>,
}

/// `thread.restore`: the fields a saga's compensation puts back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Restore {
    pub(crate) id: String,
    pub(crate) state: State,
    pub(crate) sprint_id: Option<String>,
    #[serde(default)]
    pub(crate) archived: bool,
    pub(crate) blocked_reason: Option<String>,
    /// For `running`: when its quantum ends (as the thread had it).
    pub(crate) quantum_ends_at: Option<String>,
}
