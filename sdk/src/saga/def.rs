//! What a saga author declares: the steps, the command(s) each sends, the
//! events that complete or fail them, each step's timeout, retry policy
//! and compensation, the starting events, and the state's schema version
//! with its migration.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::{CommandToSend, Delivered, Error};

pub(crate) type StartFn = Box<dyn Fn(&Delivered<Value>) -> Result<Option<Value>, Error>>;
pub(crate) type SendFn = Box<dyn Fn(&Value) -> Result<Vec<Request>, Error>>;
pub(crate) type RecordFn = Box<dyn Fn(&mut Value, &str, &Value) -> Result<(), Error>>;
pub(crate) type UndoFn = Box<dyn Fn(&Value, &str) -> Result<Option<CommandToSend>, Error>>;
pub(crate) type MigrateFn = Box<dyn Fn(u32, Value) -> Result<Value, Error>>;

/// Most requests one step (or the whole of a step's resend) may send: the
/// host's default cap on the commands one event may send.
pub const MAX_REQUESTS: usize = 100;

/// How long a finished instance is kept by default: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// One command a step sends, and the key its answer is recognised by.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What the answering events carry where the step's matchers point
    /// (e.g. the story's id): unique within the step.
    pub key: String,
    /// The command.
    pub command: CommandToSend,
}

impl Request {
    /// The command `routing_key` with `body`, answered under `key`.
    pub fn new(
        key: impl Into<String>,
        routing_key: &str,
        body: &impl Serialize,
    ) -> Result<Self, Error> {
        Ok(Request {
            key: key.into(),
            command: CommandToSend::new(routing_key, body)?,
        })
    }
}

/// An event pattern and where, in its JSON body, the key of the request it
/// answers is (a JSON pointer, e.g. `/id` or `/context/id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub(crate) pattern: &'static str,
    pub(crate) pointer: &'static str,
}

/// How a step's unanswered or failed requests are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the second try; it doubles for each later one.
    pub first_backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// The error codes worth another try (`timeout` is a step that got no
    /// answer in time). A compensation is retried whatever the code: it
    /// has to happen.
    pub on: &'static [&'static str],
}

impl Default for Retry {
    /// 3 tries, 1 s then 2 s apart, on `timeout` and `unavailable`.
    fn default() -> Self {
        Retry {
            max_attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            on: &["timeout", "unavailable"],
        }
    }
}

impl Retry {
    /// One try: a failure or a timeout fails the step at once.
    pub const fn never() -> Self {
        Retry {
            max_attempts: 1,
            first_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            on: &[],
        }
    }

    /// The wait after failed try `attempt` (1-based) before the next one.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// Whether a failure with `code` on try `attempt` gets another try.
    pub(crate) fn again(&self, code: &str, attempt: u32, any_code: bool) -> bool {
        attempt < self.max_attempts.max(1) && (any_code || self.on.contains(&code))
    }
}

/// One step of a [`Saga`].
pub struct Step {
    pub(crate) name: &'static str,
    pub(crate) send: SendFn,
    pub(crate) completes: Vec<Matcher>,
    pub(crate) fails: Vec<Matcher>,
    pub(crate) record: Option<RecordFn>,
    pub(crate) undo: Option<UndoFn>,
    pub(crate) undone: Vec<Matcher>,
    pub(crate) timeout: Duration,
    pub(crate) retry: Retry,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("completes", &self.completes)
            .field("fails", &self.fails)
            .field("compensates", &self.undo.is_some())
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Step {
    /// A step named `name` (`[a-z0-9_]`, unique in its saga) whose
    /// requests `send` makes from the instance's state. No requests: the
    /// step is done at once.
    pub fn new<F>(name: &'static str, send: F) -> Self
    where
        F: Fn(&Value) -> Result<Vec<Request>, Error> + 'static,
    {
        Step {
            name,
            send: Box::new(send),
            completes: Vec::new(),
            fails: Vec::new(),
            record: None,
            undo: None,
            undone: Vec::new(),
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
        }
    }

    /// An event matching `pattern` answers the request whose key is at
    /// `pointer` in its body: that request succeeded.
    #[must_use]
    pub fn completes_on(mut self, pattern: &'static str, pointer: &'static str) -> Self {
        self.completes.push(Matcher { pattern, pointer });
        self
    }

    /// An event matching `pattern` (an error event, `{code, message,
    /// context, command}`) says the request whose key is at `pointer`
    /// failed. An error event that names its command (`command`) counts
    /// only for a request of that routing key.
    #[must_use]
    pub fn fails_on(mut self, pattern: &'static str, pointer: &'static str) -> Self {
        self.fails.push(Matcher { pattern, pointer });
        self
    }

    /// Keeps what an answer says in the state, as the request `key`
    /// completes (`f(state, key, event body)`).
    #[must_use]
    pub fn records<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Value, &str, &Value) -> Result<(), Error> + 'static,
    {
        self.record = Some(Box::new(f));
        self
    }

    /// How to undo request `key` once it completed (`f(state, key)`; `None`
    /// when there is nothing to undo), and the event matching `pattern`,
    /// key at `pointer`, that says it was undone. Failures are recognised
    /// by the step's [`fails_on`](Step::fails_on).
    #[must_use]
    pub fn compensate<F>(mut self, f: F, pattern: &'static str, pointer: &'static str) -> Self
    where
        F: Fn(&Value, &str) -> Result<Option<CommandToSend>, Error> + 'static,
    {
        self.undo = Some(Box::new(f));
        self.undone.push(Matcher { pattern, pointer });
        self
    }

    /// How long the step (each try) may wait for all its answers, through
    /// the scheduler (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The step's retry policy (default [`Retry::default`]).
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The requests the step makes from `state` (for the author's tests).
    pub fn requests(&self, state: &Value) -> Result<Vec<Request>, Error> {
        (self.send)(state)
    }

    /// The command that would undo request `key` (for the author's tests).
    pub fn compensation(&self, state: &Value, key: &str) -> Result<Option<CommandToSend>, Error> {
        match &self.undo {
            Some(undo) => undo(state, key),
            None => Ok(None),
        }
    }
}

/// A saga: a reactor whose state is one document per instance, driven by
/// a declared state machine. See the [module documentation](crate::saga).
pub struct Saga {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
    pub(crate) state_version: u32,
    pub(crate) migrate: Option<MigrateFn>,
    pub(crate) starts: Vec<(&'static str, StartFn)>,
    pub(crate) steps: Vec<Step>,
    pub(crate) sends: Vec<&'static str>,
    pub(crate) retention: Duration,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("state_version", &self.state_version)
            .field("steps", &self.steps)
            .finish()
    }
}

impl Saga {
    /// The saga `name`: its reactor's domain, and the prefix of its events
    /// (`<name>.started`, …) and timers. `version` is the component's.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Saga {
            name,
            version,
            state_version: 1,
            migrate: None,
            starts: Vec::new(),
            steps: Vec::new(),
            sends: Vec::new(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// The version of the state's schema (default 1), kept in each
    /// instance's document. An instance written under an older one is
    /// passed through [`migrate`](Saga::migrate) when next read; one that
    /// cannot be (no migration, or it fails, or a newer version wrote it)
    /// is parked, its document left as it was.
    #[must_use]
    pub fn state_version(mut self, version: u32) -> Self {
        self.state_version = version;
        self
    }

    /// `f(old_version, state)`: the state of an instance written under
    /// schema `old_version`, brought up to the current one (or an error,
    /// which parks the instance).
    #[must_use]
    pub fn migrate<F>(mut self, f: F) -> Self
    where
        F: Fn(u32, Value) -> Result<Value, Error> + 'static,
    {
        self.migrate = Some(Box::new(f));
        self
    }

    /// An event matching `pattern` starts an instance with the state `f`
    /// makes of it (`None`: not for this saga). The instance is keyed by
    /// the command that caused the event (its `causation_id`), so the same
    /// command never starts two.
    #[must_use]
    pub fn starts_on<F>(mut self, pattern: &'static str, f: F) -> Self
    where
        F: Fn(&Delivered<Value>) -> Result<Option<Value>, Error> + 'static,
    {
        self.starts.push((pattern, Box::new(f)));
        self
    }

    /// How long an instance is kept once finished (`completed`, or
    /// `failed` and not stuck), counted from its last change; default
    /// [`DEFAULT_RETENTION`]. Each start deletes a few instances past it,
    /// oldest first. Keep it at least the host's deduplication window (7
    /// days by default): a starting event delivered again after its
    /// instance is gone would start it anew.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Appends a step: steps run in the order added.
    #[must_use]
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// The routing keys of every command the steps and compensations send.
    #[must_use]
    pub fn sends(mut self, commands: &[&'static str]) -> Self {
        self.sends.extend_from_slice(commands);
        self
    }

    /// The saga's name (its domain).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step `name`, if there is one.
    pub fn step_named(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}
