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

from parallel_you import Error, Reactor, topic_matches
from parallel_you_reactor import command
from parallel_you_saga_machine import (
    MAX_HELD,
    STATUSES,
    Effects,
    Machine,
    key_at,
    note,
)

__all__ = ["MAX_LIST", "Request", "Retry", "Saga", "Step"]

# One document per instance, keyed by its id.
INSTANCES = "instances"
# Request key -> the instance waiting for its answer.
WAITS = "waits"
# Instances whose document this version cannot read at all, with why.
UNREADABLE = "unreadable"
# Most instances one `saga_list` answers.
MAX_LIST = 500
# How long a finished instance is kept by default: 30 days, in ms.
DEFAULT_RETENTION_MS = 30 * 86_400_000
# Finished instances past their retention deleted per start: more than
# one, so the sweep outpaces the starts that add instances.
SWEEP_PER_START = 4


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
        return {"routing_key": self.routing_key, "body": _json_value(self.body)}


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
        return _Runner(self).reactor()


# ---------------------------------------------------------------------------
# The saga as a reactor
# ---------------------------------------------------------------------------


def _json_value(value):
    """``value`` as JSON would give it back (tuples become lists, …), or
    :class:`Error` ``validation`` when it is not JSON at all."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise Error.validation(f"a request body is not JSON: {e}") from None


def _usable_key(key):
    """A document id is printable and at most 1 KiB; keys of other shapes
    cannot be waited for."""
    return 0 < len(key.encode()) <= 1024 and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key
    )


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _opt(v, kind):
    return v is None or kind(v)


def _is_cmd(v):
    return isinstance(v, dict) and isinstance(v.get("routing_key"), str) and "body" in v


def _is_done(v):
    return (
        isinstance(v, dict)
        and isinstance(v.get("step"), str)
        and isinstance(v.get("key"), str)
        and _opt(v.get("compensation"), _is_cmd)
    )


def _unreadable(doc):
    """Why an instance document is not one this module can run (``None``:
    it is): the checks the Rust SDK's typed document makes."""
    if not isinstance(doc, dict):
        return "it is not a JSON object"
    fields = {
        "id": lambda v: isinstance(v, str),
        "saga": lambda v: isinstance(v, str),
        "schema_version": _is_int,
        "status": lambda v: v in STATUSES,
        "step": _is_int,
        "attempt": _is_int,
        "pending": lambda v: isinstance(v, dict) and all(_is_cmd(c) for c in v.values()),
        "done": lambda v: isinstance(v, list) and all(_is_done(d) for d in v),
        "undone": lambda v: isinstance(v, list) and all(_is_done(d) for d in v),
        "stuck": lambda v: isinstance(v, bool),
        "seq": _is_int,
        "started_ms": _is_int,
        "updated_ms": _is_int,
        "history": lambda v: isinstance(v, list),
        "history_dropped": _is_int,
    }
    for name, ok in fields.items():
        if name not in doc:
            return f"missing field `{name}`"
        if not ok(doc[name]):
            return f"field `{name}` has the wrong shape"
    optional = {
        "step_name": lambda v: isinstance(v, str),
        "failure": lambda v: isinstance(v, dict) and isinstance(v.get("code"), str),
        "timer": lambda v: isinstance(v, dict)
        and v.get("kind") in ("timeout", "resend")
        and _is_int(v.get("seq")),
        "session_id": lambda v: isinstance(v, str),
        "parked": lambda v: isinstance(v, dict)
        and v.get("from") in STATUSES
        and isinstance(v.get("held", []), list),
    }
    for name, ok in optional.items():
        doc.setdefault(name, None)
        if not _opt(doc[name], ok):
            return f"field `{name}` has the wrong shape"
    if "data" not in doc:
        doc["data"] = None
    return None


def _to_send(cmd):
    return command(cmd["routing_key"], cmd["body"])


class _Runner:
    """Events start instances or answer their requests (found through the
    ``waits`` collection), timers come back as the saga's own events, and
    each change of an instance is written over the version read, its events
    emitted and its commands returned, all in the event's one unit of work."""

    def __init__(self, saga):
        self.saga = saga

    def reactor(self):
        saga = self.saga
        r = Reactor(saga.name, saga.version).sends(*saga._sends)
        r.on_timer(f"{saga.name}.timer")(self.on_timer)
        r.on_timer(f"{saga.name}.retry")(self.on_retry)
        patterns = []
        for p in [p for p, _ in saga._starts] + [p for p, _ in Machine(saga, 0).matchers()]:
            if p not in patterns:
                patterns.append(p)
        for p in patterns:
            r.on(p)(self.on_event)
        _add_queries(r)
        return r

    def on_event(self, ctx, ev):
        key = ev.routing_key
        for pattern, start in self.saga._starts:
            if topic_matches(pattern, key):
                data = start(ev)
                if data is not None:
                    return self.begin(ctx, ev, data)
        machine = Machine(self.saga, ev.timestamp_ms)
        keys = set()
        for pattern, pointer in machine.matchers():
            if topic_matches(pattern, key):
                k = key_at(ev.body, pointer)
                if k is not None and _usable_key(k):
                    keys.add(k)
        waits = ctx.collection(WAITS)
        out = []
        for k in sorted(keys):
            wait = waits.get(k)
            instance = wait.value.get("instance") if wait and isinstance(wait.value, dict) else None
            if not isinstance(instance, str):
                continue
            loaded = self.load(ctx, instance, machine)
            if loaded is None:
                continue
            version, inst, fx = loaded
            if inst["status"] == "parked":
                _hold(inst, key, k, ev.body)
            else:
                outcome = machine.classify(inst, key, k, ev.body)
                if outcome is not None:
                    fx.merge(machine.answer(inst, outcome, k, ev.body))
                elif fx.empty():
                    continue
            out.extend(self.apply(ctx, version, inst, fx))
        return out

    def begin(self, ctx, ev, data):
        """A new instance for the command that caused ``ev``; the same
        command again (a redelivery, a second event of it) starts nothing."""
        id = ev.meta.causation_id or ev.meta.message_id
        if ctx.collection(INSTANCES).get(id) is not None:
            ctx.info(f"instance {id} already started")
            return []
        machine = Machine(self.saga, ev.timestamp_ms)
        inst, fx = machine.start(id, _json_value(data), ev.meta.session_id)
        self.sweep(ctx, ev.timestamp_ms)
        return self.apply(ctx, None, inst, fx)

    def sweep(self, ctx, now_ms):
        """Deletes up to :data:`SWEEP_PER_START` finished instances unchanged
        for longer than the retention, oldest first, each written over the
        version read first (a WIT ``delete`` checks no version), as the Rust
        SDK does."""
        cutoff = now_ms - self.saga.retention_ms
        if cutoff <= 0:
            return
        instances = ctx.collection(INSTANCES)
        old = instances.list(
            {
                "status": {"$in": ["completed", "failed"]},
                "stuck": False,
                "started_ms": {"$lt": cutoff},
                "updated_ms": {"$lt": cutoff},
                "$sort": {"started_ms": 1},
                "$limit": SWEEP_PER_START,
            }
        )
        for doc in old:
            instances.put(doc.id, doc.value, doc.version)
            instances.delete(doc.id)

    def on_timer(self, ctx, ev):
        b = ev.body if isinstance(ev.body, dict) else {}
        id, seq = b.get("id"), b.get("seq")
        if not isinstance(id, str) or not _is_int(seq):
            raise Error.validation("a saga timer needs `id` (a string) and `seq` (an integer)")
        machine = Machine(self.saga, ev.timestamp_ms)
        loaded = self.load(ctx, id, machine)
        if loaded is None:
            return []
        version, inst, fx = loaded
        if inst["status"] != "parked":
            fx.merge(machine.timer(inst, seq))
        if fx.empty():
            ctx.debug(f"stale timer {seq} of {id}")
            return []
        return self.apply(ctx, version, inst, fx)

    def on_retry(self, ctx, ev):
        """An operator's retry: a parked instance is read again (this version
        may migrate it) and resumed; a stuck compensation is tried again.
        Anything else is logged and left alone (a refusal would only be
        retried and dead-lettered)."""
        id = ev.body.get("id") if isinstance(ev.body, dict) else None
        if not isinstance(id, str):
            raise Error.validation("a saga retry needs `id` (a string)")
        machine = Machine(self.saga, ev.timestamp_ms)
        unreadable = ctx.collection(UNREADABLE)
        was_unreadable = unreadable.get(id) is not None
        loaded = self.load(ctx, id, machine)
        if loaded is None:
            ctx.warn(f"retry of {id}: no instance it can read")
            return []
        version, inst, fx = loaded
        if was_unreadable:
            unreadable.delete(id)
        if inst["status"] == "parked":
            self.unpark(machine, inst, fx)
        else:
            try:
                fx.merge(machine.retry(inst))
            except Error as e:
                if fx.empty() and not was_unreadable:
                    ctx.warn(f"retry of {id} refused: {e.message}")
                    return []
        return self.apply(ctx, version, inst, fx)

    def unpark(self, machine, inst, fx):
        """Reads an instance again from where it was parked: readable now, it
        takes up its old status, the answers held meanwhile, and a fresh
        timeout for what is still pending."""
        parked = inst.get("parked")
        inst["parked"] = None
        if parked is None:
            return
        held = parked.get("held") or []
        inst["status"] = parked["from"]
        if not self.upgrade(machine, inst, fx):
            # Parked again, with its held answers kept.
            inst["parked"]["held"] = held
            return
        note(inst, machine.now_ms, "resumed", None, {"held": len(held)})
        fx.events.append(("resumed", {"id": inst["id"], "status": inst["status"]}))
        for h in held:
            outcome = machine.classify(inst, h["routing_key"], h["key"], h["body"])
            if outcome is not None:
                fx.merge(machine.answer(inst, outcome, h["key"], h["body"]))
        if inst["timer"] is None:
            machine.resume(inst, fx)

    def load(self, ctx, id, machine):
        """``(version, instance, effects)`` for instance ``id``, brought to
        the current schema (or parked, in the effects); ``None`` if there is
        none, or if its document cannot be read at all (then it is recorded
        as unreadable and announced once, its document untouched)."""
        doc = ctx.collection(INSTANCES).get(id)
        if doc is None:
            return None
        inst = doc.value
        why = _unreadable(inst)
        if why is not None:
            reason = (
                f"the instance document cannot be read by {self.saga.name} "
                f"{self.saga.version}: {why}"
            )
            unreadable = ctx.collection(UNREADABLE)
            if unreadable.get(id) is None:
                unreadable.put(id, {"id": id, "reason": reason, "at_ms": machine.now_ms}, 0)
                ctx.emit(f"{self.saga.name}.parked", {"id": id, "reason": reason})
            ctx.warn(reason)
            return None
        fx = Effects()
        if inst["status"] != "parked":
            self.upgrade(machine, inst, fx)
        return doc.version, inst, fx

    def upgrade(self, machine, inst, fx):
        """Brings the state to the current schema version through the
        author's migration; ``False`` (and the instance parked, its state as
        it was) when that cannot be done."""
        old, current = inst["schema_version"], self.saga.schema
        if old == current:
            return True
        if old > current:
            reason = (
                f"its state is at schema version {old}, newer than this version's {current}"
            )
        elif self.saga._migrate is None:
            reason = (
                f"its state is at schema version {old}, and this version ({current}) "
                "has no migration"
            )
        else:
            try:
                data = _json_value(self.saga._migrate(old, inst["data"]))
            except Exception as e:  # noqa: BLE001 - any failure parks it
                reason = (
                    f"migrating its state from schema version {old} to {current} failed: "
                    f"{getattr(e, 'message', e)}"
                )
            else:
                inst["data"] = data
                inst["schema_version"] = current
                note(inst, machine.now_ms, "migrated", None, {"from": old, "to": current})
                return True
        machine.disarm(inst, fx)
        note(inst, machine.now_ms, "parked", None, {"reason": reason})
        fx.events.append(
            (
                "parked",
                {
                    "id": inst["id"],
                    "reason": reason,
                    "schema_version": old,
                    "current_schema_version": current,
                },
            )
        )
        inst["parked"] = {"reason": reason, "from": inst["status"], "held": []}
        inst["status"] = "parked"
        return False

    def apply(self, ctx, version, inst, fx):
        """Carries out what the machine decided, in the event's unit of work."""
        name = self.saga.name
        for timer_id in fx.cancel:
            try:
                ctx.cancel(timer_id)
            except Error as e:
                # A stale timer is ignored when it fires.
                ctx.warn(f"could not cancel timer {timer_id}: {e.message}")
        if fx.schedule is not None:
            delay_ms, seq = fx.schedule
            timer_id = ctx.schedule(delay_ms, f"{name}.timer", {"id": inst["id"], "seq": seq})
            if inst["timer"] is not None:
                inst["timer"]["id"] = timer_id
        waits = ctx.collection(WAITS)
        for k in fx.unwait:
            w = waits.get(k)
            if w is not None and isinstance(w.value, dict) and w.value.get("instance") == inst["id"]:
                waits.delete(k)
        for k in fx.wait:
            if _usable_key(k):
                waits.put(k, {"instance": inst["id"]})
        ctx.collection(INSTANCES).put(inst["id"], inst, version or 0)
        for suffix, body in fx.events:
            ctx.emit(f"{name}.{suffix}", body)
        return [_to_send(c) for c in fx.commands]


def _hold(inst, routing_key, key, body):
    """Keeps an answer for a parked instance (the first :data:`MAX_HELD`)."""
    parked = inst.get("parked")
    if parked is not None and len(parked["held"]) < MAX_HELD:
        parked["held"].append({"routing_key": routing_key, "key": key, "body": body})


# ---------------------------------------------------------------------------
# Queries: `saga_list` (by status) and `saga_show` (one, with its history,
# pending timer and compensations), answered as the Rust SDK answers them.
# ---------------------------------------------------------------------------

_LIST_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": list(STATUSES)},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST},
    },
    "additionalProperties": False,
}
_SHOW_SCHEMA = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


def _add_queries(r):
    r.query(
        "saga_list",
        "Saga instances, newest first by id, optionally of one status",
        _LIST_SCHEMA,
    )(_list)
    r.query(
        "saga_show",
        "One saga instance: status, step, history, pending timer, compensations",
        _SHOW_SCHEMA,
    )(_show)
    r.index(INSTANCES, "status", "started_ms")


def _summary(id, doc):
    """One line per instance, read as loosely as possible: a list must not
    fail on one instance a newer version wrote."""
    doc = doc if isinstance(doc, dict) else {}
    return {
        "id": id,
        "status": doc.get("status"),
        "step": doc.get("step_name"),
        "stuck": doc.get("stuck"),
        "started_ms": doc.get("started_ms"),
        "updated_ms": doc.get("updated_ms"),
        "failure": doc.get("failure"),
    }


def _list(ctx, params):
    status = params.get("status")
    limit = params.get("limit")
    limit = min(max(limit if _is_int(limit) else 100, 1), MAX_LIST)
    filter = {"$limit": limit, "$sort": {"started_ms": -1}}
    if status is not None:
        filter["status"] = status
    instances = [_summary(d.id, d.value) for d in ctx.collection(INSTANCES).list(filter)]
    if status in (None, "parked"):
        for d in ctx.collection(UNREADABLE).list({"$limit": limit}):
            instances = [i for i in instances if i["id"] != d.id]
            reason = d.value.get("reason") if isinstance(d.value, dict) else None
            instances.append(
                {"id": d.id, "status": "parked", "reason": reason, "unreadable": True}
            )
    return {"count": len(instances), "instances": instances}


def _show(ctx, params):
    id = params["id"]
    doc = ctx.collection(INSTANCES).get(id)
    if doc is None:
        raise Error.not_found(f"no saga instance `{id}`")
    unreadable = ctx.collection(UNREADABLE).get(id)
    answer = {
        "version": doc.version,
        "instance": doc.value,
        "unreadable": None if unreadable is None else unreadable.value,
    }
    inst = json.loads(json.dumps(doc.value))
    if _unreadable(inst) is None:
        answer["timers"] = [] if inst["timer"] is None else [inst["timer"]]
        answer["compensations"] = [
            {"step": d["step"], "key": d["key"], "command": d["compensation"]}
            for d in reversed(inst["done"])
            if d.get("compensation") is not None
        ]
    return answer
