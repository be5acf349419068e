"""Sagas in Python: workflows that issue a sequence of commands and undo
the completed ones when a later one fails, built on the reactor world.
The same model, instance document and queries as the Rust SDK's
``sdk/src/saga/`` (see its module documentation and
``docs/saga-state.md``), so ``pyou sagas list|show|retry`` treats both
alike.

A :class:`Saga` is a reactor whose state is one document per instance
(the ``instances`` collection of its domain), keyed by the command that
started it (the starting event's ``causation_id``). It declares the
events that start an instance (:meth:`Saga.starts_on`), its
:class:`Step`\\ s in order (the :class:`Request`\\ s each makes from the
state, the events that complete or fail them with a JSON pointer to the
request's key, a timeout per try, a :class:`Retry` policy and the
compensating command of each completed request), the state's schema
version and a migration. Every transition is an event of the saga's
domain (``<saga>.started``, ``.step_completed``, ``.step_failed``,
``.compensating``, ``.compensated``, ``.completed``, ``.failed``,
``.parked``, ``.resumed``) on the session of the event it reacted to.

Example (``app.py``, built with ``-w reactor``)::

    from parallel_you import command
    from parallel_you_saga import Request, Retry, Saga, Step

    def pay(state):
        return [Request(state["order"], "bank.charge", {"order": state["order"]})]

    saga = (
        Saga("checkout", "1.0.0")
        .starts_on("shop.ordered", lambda ev: ev.body)
        .step(
            Step("pay", pay)
            .completes_on("bank.charged", "/order")
            .fails_on("bank.error", "/context/order")
            .compensate(lambda s, key: command("bank.refund", {"order": key}),
                        "bank.refunded", "/order")
            .timeout(5_000)
            .retry(Retry(max_attempts=3, first_backoff_ms=500))
        )
        .sends("bank.charge", "bank.refund")
    )
    EventReactor = saga.reactor().export()
"""

import json

from parallel_you_saga_documents import MAX_LIST, json_value

__all__ = ["DEFAULT_RETENTION_MS", "MAX_LIST", "Request", "Retry", "Saga", "Step"]

# How long a finished instance is kept by default: 30 days, in ms.
DEFAULT_RETENTION_MS = 30 * 86_400_000


# ---------------------------------------------------------------------------
# What the author declares
# ---------------------------------------------------------------------------


class Request:
    """One command a step sends (``routing_key`` with ``body``, any JSON
    value), and the ``key`` its answer is recognised by: what the
    answering events carry where the step's matchers point (unique within
    the step)."""

    __slots__ = ("key", "routing_key", "body")

    def __init__(self, key, routing_key, body=None):
        self.key = str(key)
        self.routing_key = routing_key
        self.body = {} if body is None else body

    def cmd(self):
        """As the instance keeps it."""
        return {"routing_key": self.routing_key, "body": json_value(self.body)}


class Retry:
    """How a step's unanswered or failed requests are tried again:
    ``max_attempts`` tries in all (the first included), waiting
    ``first_backoff_ms`` before the second and doubling up to
    ``max_backoff_ms``, for failures whose code is in ``on`` (``timeout``
    is a try that got no answer in time). A compensation is retried
    whatever the code: it has to happen. The defaults are the Rust SDK's."""

    __slots__ = ("max_attempts", "first_backoff_ms", "max_backoff_ms", "on")

    def __init__(
        self,
        max_attempts=3,
        first_backoff_ms=1_000,
        max_backoff_ms=30_000,
        on=("timeout", "unavailable"),
    ):
        self.max_attempts = int(max_attempts)
        self.first_backoff_ms = int(first_backoff_ms)
        self.max_backoff_ms = int(max_backoff_ms)
        self.on = tuple(on)

    @classmethod
    def never(cls):
        """One try: a failure or a timeout fails the step at once."""
        return cls(1, 0, 0, ())

    def backoff_ms(self, attempt):
        """The wait after failed try ``attempt`` (1-based) before the next."""
        doublings = min(max(attempt - 1, 0), 31)
        return min(self.first_backoff_ms * (1 << doublings), self.max_backoff_ms)

    def again(self, code, attempt, any_code):
        """Whether a failure with ``code`` on try ``attempt`` gets another."""
        return attempt < max(self.max_attempts, 1) and (any_code or code in self.on)


class Step:
    """One step of a :class:`Saga`: ``name`` (``[a-z0-9_]``, unique in its
    saga) and ``send(state)``, the list of :class:`Request` it makes from
    the instance's state (none: the step is done at once)."""

    def __init__(self, name, send):
        self.name = name
        self.send = send
        self.completes = []  # (pattern, pointer)
        self.fails = []
        self.undone = []
        self.record = None
        self.undo = None
        self.timeout_ms = 30_000
        self.retry_policy = Retry()

    def completes_on(self, pattern, pointer):
        """An event matching ``pattern`` answers the request whose key is at
        JSON ``pointer`` in its body: that request succeeded."""
        self.completes.append((pattern, pointer))
        return self

    def fails_on(self, pattern, pointer):
        """An event matching ``pattern`` (an error event, ``{code, message,
        context, command}``) says the request whose key is at ``pointer``
        failed. One that names its command counts only for a request of
        that routing key."""
        self.fails.append((pattern, pointer))
        return self

    def records(self, fn):
        """Keeps what an answer says in the state as request ``key``
        completes: ``fn(state, key, event_body)`` changes ``state``."""
        self.record = fn
        return self

    def compensate(self, fn, pattern, pointer):
        """How to undo request ``key`` once it completed: ``fn(state, key)``
        returns a :func:`command` (or ``None``: nothing to undo); the event
        matching ``pattern``, key at ``pointer``, says it was undone.
        Failures are recognised by :meth:`fails_on`."""
        self.undo = fn
        self.undone.append((pattern, pointer))
        return self

    def timeout(self, ms):
        """How long each try may wait for all its answers, in ms, through the
        scheduler (default 30 s)."""
        self.timeout_ms = int(ms)
        return self

    def retry(self, policy):
        """The step's :class:`Retry` policy (default ``Retry()``)."""
        self.retry_policy = policy
        return self

    def requests(self, state):
        """The requests the step makes from ``state`` (for tests)."""
        return list(self.send(state) or [])

    def compensation(self, state, key):
        """The command that would undo request ``key``, as the instance
        keeps it (``{routing_key, body}``), or ``None``."""
        if self.undo is None:
            return None
        c = self.undo(state, key)
        if c is None:
            return None
        return {"routing_key": c.routing_key, "body": json.loads(c.body)}


class Saga:
    """A saga: a reactor whose state is one document per instance, driven by
    a declared state machine. ``name`` is its domain and the prefix of its
    events and timers; ``version`` the component's."""

    def __init__(self, name, version):
        self.name = name
        self.version = version
        self.schema = 1
        self._migrate = None
        self._starts = []  # (pattern, fn)
        self.steps = []
        self._sends = []
        self.retention_ms = DEFAULT_RETENTION_MS

    def state_version(self, version):
        """The version of the state's schema (default 1), kept in each
        instance's document. An instance written under an older one passes
        through :meth:`migrate` when next read; one that cannot be (no
        migration, it fails, or a newer version wrote it) is parked, its
        document left as it was."""
        self.schema = int(version)
        return self

    def migrate(self, fn):
        """``fn(old_version, state)``: the state of an instance written under
        schema ``old_version``, brought to the current one (raising parks the
        instance)."""
        self._migrate = fn
        return self

    def starts_on(self, pattern, fn):
        """An event matching ``pattern`` starts an instance with the state
        ``fn(event)`` makes of it (``None``: not for this saga); ``event`` is
        a :class:`Delivered`. The same command never starts two."""
        self._starts.append((pattern, fn))
        return self

    def retention(self, ms):
        """How long an instance is kept once finished (``completed``, or
        ``failed`` and not stuck), in ms from its last change (default 30
        days). Each start deletes a few instances past it, oldest first. Keep
        it at least the host's deduplication window (7 days by default): a
        starting event delivered again after its instance is gone would
        start it anew."""
        self.retention_ms = int(ms)
        return self

    def step(self, step):
        """Appends a step: steps run in the order added."""
        if self.step_named(step.name) is not None:
            raise ValueError(f"step {step.name} is declared twice")
        self.steps.append(step)
        return self

    def sends(self, *routing_keys):
        """The routing keys of every command the steps and compensations send."""
        self._sends.extend(routing_keys)
        return self

    def step_named(self, name):
        return next((s for s in self.steps if s.name == name), None)

    def reactor(self):
        """The :class:`Reactor` that runs this saga: subscribed to its
        starting and answering events, handling its timers (``<name>.timer``)
        and operator retries (``<name>.retry``), answering ``saga_list`` and
        ``saga_show``. Export it with ``EventReactor = saga.reactor().export()``."""
        # Imported here: the runner reads this module's declarations.
        from parallel_you_saga_run import Runner

        return Runner(self).reactor()
