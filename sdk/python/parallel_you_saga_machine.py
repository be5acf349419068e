"""The state machine of one saga instance, pure: each input (a start, an
answer, a timer, an operator's retry) changes the instance document and
says what to do (commands to send, events to announce, the timer to set or
cancel, the keys to wait on). A port of the Rust SDK's
``sdk/src/saga/machine.rs``, over the same instance document
(``docs/saga-state.md``), so both answer ``pyou sagas`` alike.

An instance is the plain dict stored in the saga domain's ``instances``
collection; a stored command is ``{"routing_key", "body"}`` with the body
parsed. No host calls here: :mod:`parallel_you_saga` does those.
"""

from parallel_you import Error, _unexpected, topic_matches

# Most history entries an instance keeps (the oldest are dropped, and
# counted in `history_dropped`).
MAX_HISTORY = 200
# Most answers held for a parked instance, replayed when it resumes.
MAX_HELD = 100
# Most requests one step may send: the host's default cap on the commands
# one event may send.
MAX_REQUESTS = 100

STATUSES = ("running", "compensating", "completed", "failed", "parked")

COMPLETED = "completed"
FAILED = "failed"


class Effects:
    """What one input asks the runner to do, in this order: cancel, wait and
    unwait, write the instance, emit, send, schedule."""

    __slots__ = ("commands", "events", "schedule", "cancel", "wait", "unwait")

    def __init__(self):
        self.commands = []  # {"routing_key", "body"}
        self.events = []  # (suffix after "<saga>.", body)
        self.schedule = None  # (delay_ms, seq)
        self.cancel = []  # timer ids
        self.wait = []  # keys whose answers now belong to this instance
        self.unwait = []  # keys no longer waited for

    def empty(self):
        return not (
            self.commands or self.events or self.schedule or self.cancel or self.wait or self.unwait
        )

    def merge(self, more):
        """``more`` after these: its timer replaces any set before."""
        self.commands.extend(more.commands)
        self.events.extend(more.events)
        self.cancel.extend(more.cancel)
        self.wait.extend(more.wait)
        self.unwait.extend(more.unwait)
        if more.schedule is not None:
            self.schedule = more.schedule


def key_at(body, pointer):
    """The key at JSON ``pointer`` in ``body``: a string, or a number as
    text (``None`` otherwise or when absent)."""
    value = body
    if pointer:
        if not pointer.startswith("/"):
            return None
        for raw in pointer[1:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict):
                if part not in value:
                    return None
                value = value[part]
            elif isinstance(value, list):
                if not part.isdigit() or (len(part) > 1 and part[0] == "0"):
                    return None
                i = int(part)
                if i >= len(value):
                    return None
                value = value[i]
            else:
                return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _answers(matchers, routing_key, key, body):
    return any(
        topic_matches(pattern, routing_key) and key_at(body, pointer) == key
        for pattern, pointer in matchers
    )


def note(inst, at_ms, what, step=None, detail=None):
    """Adds a history entry, dropping the oldest past :data:`MAX_HISTORY`."""
    history = inst["history"]
    if len(history) >= MAX_HISTORY:
        del history[0]
        inst["history_dropped"] += 1
    entry = {"at_ms": at_ms, "what": what}
    if step is not None:
        entry["step"] = step
    if detail is not None:
        entry["detail"] = detail
    history.append(entry)


def to_undo(inst):
    """The completed requests with a compensation, last first, as
    ``{step, key}``."""
    return [
        {"step": d["step"], "key": d["key"]}
        for d in reversed(inst["done"])
        if d.get("compensation") is not None
    ]


def undone_list(inst):
    return [{"step": d["step"], "key": d["key"]} for d in inst["undone"]]


def _error_of(exc):
    return exc if isinstance(exc, Error) else _unexpected(exc)


class Machine:
    """One saga definition at one moment (``now_ms``: the input's time)."""

    def __init__(self, saga, now_ms):
        self.saga = saga
        self.now_ms = now_ms

    # -- inputs -------------------------------------------------------------

    def start(self, id, data, session_id):
        """A new instance ``id`` with ``data``, started on ``session_id``,
        and what its first step does."""
        inst = {
            "id": id,
            "saga": self.saga.name,
            "schema_version": self.saga.schema,
            "status": "running",
            "step": 0,
            "step_name": None,
            "attempt": 1,
            "pending": {},
            "data": data,
            "done": [],
            "undone": [],
            "failure": None,
            "stuck": False,
            "timer": None,
            "seq": 0,
            "session_id": session_id,
            "parked": None,
            "started_ms": self.now_ms,
            "updated_ms": self.now_ms,
            "history": [],
            "history_dropped": 0,
        }
        fx = Effects()
        note(inst, self.now_ms, "started")
        fx.events.append(
            (
                "started",
                {
                    "id": id,
                    "saga": self.saga.name,
                    "steps": [s.name for s in self.saga.steps],
                    "data": data,
                },
            )
        )
        self._enter(inst, 0, fx)
        return inst, fx

    def classify(self, inst, routing_key, key, body):
        """``COMPLETED`` or ``FAILED`` when the event answers the instance's
        current request ``key``: its routing key matches the current step's
        (or, compensating, the undone step's) matchers for that key, and an
        error event that names its command names the request's."""
        pending = inst["pending"].get(key)
        step = self.current_step(inst)
        if pending is None or step is None:
            return None
        if inst["status"] == "running":
            ok = step.completes
        elif inst["status"] == "compensating":
            ok = step.undone
        else:
            return None
        if _answers(ok, routing_key, key, body):
            return COMPLETED
        named = body.get("command") if isinstance(body, dict) else None
        names_other = isinstance(named, str) and named != pending["routing_key"]
        if not names_other and _answers(step.fails, routing_key, key, body):
            return FAILED
        return None

    def answer(self, inst, outcome, key, body):
        """An answer to request ``key`` (already classified)."""
        fx = Effects()
        inst["updated_ms"] = self.now_ms
        status = inst["status"]
        if status == "running" and outcome == COMPLETED:
            self._completed(inst, key, body, fx)
        elif status == "compensating" and outcome == COMPLETED:
            self._undid(inst, key, fx)
        elif status in ("running", "compensating") and outcome == FAILED:
            b = body if isinstance(body, dict) else {}
            code = b.get("code") if isinstance(b.get("code"), str) else "error"
            message = b.get("message")
            if not isinstance(message, str):
                message = "the request failed"
            self._failed_try(inst, key, code, message, fx)
        return fx

    def timer(self, inst, seq):
        """The instance's timer ``seq`` fired (a stale one changes nothing)."""
        fx = Effects()
        timer = inst.get("timer")
        if timer is None or timer.get("seq") != seq:
            return fx
        inst["timer"] = None
        inst["updated_ms"] = self.now_ms
        if timer["kind"] == "resend":
            self._resend(inst, fx)
        else:
            step = self.current_step(inst)
            keys = sorted(inst["pending"])
            message = "no answer to {} within {} ms (try {})".format(
                "`" + "`, `".join(keys) + "`",
                step.timeout_ms if step else 0,
                inst["attempt"],
            )
            self._failed_try(inst, keys[0] if keys else None, "timeout", message, fx)
        return fx

    def retry(self, inst):
        """An operator asked to resume: a stuck compensation is tried again
        from its first try. Anything else raises :class:`Error` saying why."""
        if not (inst["status"] == "failed" and inst["stuck"]):
            raise Error.invalid_transition(
                "instance `{}` is {}{}: only a failed instance whose compensation could not "
                "be done is retried".format(
                    inst["id"], inst["status"], " (stuck)" if inst["stuck"] else ""
                )
            )
        fx = Effects()
        inst["status"] = "compensating"
        inst["stuck"] = False
        inst["attempt"] = 1
        inst["updated_ms"] = self.now_ms
        note(inst, self.now_ms, "retried", inst["step_name"])
        fx.events.append(
            ("compensating", {"id": inst["id"], "resumed": True, "undo": to_undo(inst)})
        )
        self._send_pending(inst, fx)
        return fx

    def resume(self, inst, fx):
        """After a park: what is still pending gets a fresh timeout (its
        requests may still be answered; the timeout tries them again)."""
        if inst["status"] in ("running", "compensating") and inst["pending"]:
            step = self.current_step(inst)
            self._arm(inst, step.timeout_ms if step else 0, "timeout", fx)

    def current_step(self, inst):
        """The step an instance is on: forward, the current one;
        compensating, the one whose request is being undone."""
        name = inst.get("step_name")
        if name is None:
            return None
        return self.saga.step_named(name)

    def disarm(self, inst, fx):
        """Cancels the pending timer, if any."""
        timer = inst.get("timer")
        inst["timer"] = None
        if timer is not None and timer.get("id") is not None:
            fx.cancel.append(timer["id"])
        fx.schedule = None

    # -- steps ---------------------------------------------------------------

    def _enter(self, inst, index, fx):
        """Starts step ``index`` (or completes the instance past the last).
        Steps with nothing to send complete at once."""
        while True:
            if index >= len(self.saga.steps):
                self._finish(inst, fx)
                return
            step = self.saga.steps[index]
            inst["step"] = index
            inst["step_name"] = step.name
            inst["attempt"] = 1
            try:
                requests = list(step.send(inst["data"]) or [])
            except Exception as e:  # noqa: BLE001 - the step fails, with why
                err = _error_of(e)
                self._fail_step(inst, None, err.code, err.message, fx)
                return
            if len(requests) > MAX_REQUESTS:
                self._fail_step(
                    inst,
                    None,
                    "limit_exceeded",
                    f"step `{step.name}` made {len(requests)} requests, more than the "
                    f"{MAX_REQUESTS} one step may send",
                    fx,
                )
                return
            if not requests:
                note(inst, self.now_ms, "step_completed", step.name, {"requests": 0})
                fx.events.append(
                    ("step_completed", {"id": inst["id"], "step": step.name, "keys": []})
                )
                index += 1
                continue
            pending = {}
            for r in requests:
                if r.key in pending:
                    message = f"step `{step.name}` made two requests keyed `{r.key}`"
                    self._fail_step(inst, r.key, "validation", message, fx)
                    return
                pending[r.key] = r.cmd()
            inst["pending"] = dict(sorted(pending.items()))
            note(inst, self.now_ms, "step_started", step.name, {"keys": sorted(pending)})
            self._send_pending(inst, fx)
            return

    def _send_pending(self, inst, fx):
        """Sends every pending request (one try) and sets the try's timeout."""
        for key in sorted(inst["pending"]):
            fx.commands.append(inst["pending"][key])
            fx.wait.append(key)
        step = self.current_step(inst)
        self._arm(inst, step.timeout_ms if step else 0, "timeout", fx)

    def _resend(self, inst, fx):
        if not inst["pending"]:
            return
        inst["attempt"] += 1
        note(
            inst,
            self.now_ms,
            "resent",
            inst["step_name"],
            {"attempt": inst["attempt"], "keys": sorted(inst["pending"])},
        )
        self._send_pending(inst, fx)

    def _arm(self, inst, delay_ms, kind, fx):
        """Replaces the pending timer with a new one."""
        self.disarm(inst, fx)
        inst["seq"] += 1
        inst["timer"] = {
            "id": None,
            "kind": kind,
            "seq": inst["seq"],
            "due_ms": self.now_ms + delay_ms,
        }
        fx.schedule = (delay_ms, inst["seq"])

    def _completed(self, inst, key, body, fx):
        step = self.current_step(inst)
        if step is None or inst["pending"].pop(key, None) is None:
            return
        fx.unwait.append(key)
        if step.record is not None:
            step.record(inst["data"], key, body)
        compensation = step.compensation(inst["data"], key)
        inst["done"].append({"step": step.name, "key": key, "compensation": compensation})
        if inst["pending"]:
            return
        self.disarm(inst, fx)
        # In key order: answers come in any order.
        keys = sorted(d["key"] for d in inst["done"] if d["step"] == step.name)
        note(
            inst,
            self.now_ms,
            "step_completed",
            step.name,
            {"keys": keys, "attempt": inst["attempt"]},
        )
        fx.events.append(("step_completed", {"id": inst["id"], "step": step.name, "keys": keys}))
        self._enter(inst, inst["step"] + 1, fx)

    def _failed_try(self, inst, key, code, message, fx):
        """One try of the current step or compensation failed: try again
        after the backoff if the policy allows, else fail the step (forward)
        or leave the instance stuck (compensating)."""
        step = self.current_step(inst)
        if step is None:
            return
        compensating = inst["status"] == "compensating"
        detail = {"key": key, "code": code, "message": message, "attempt": inst["attempt"]}
        if step.retry_policy.again(code, inst["attempt"], compensating):
            note(inst, self.now_ms, "try_failed", step.name, detail)
            self._arm(inst, step.retry_policy.backoff_ms(inst["attempt"]), "resend", fx)
            return
        if compensating:
            self._stuck(inst, key, code, message, fx)
        else:
            self._fail_step(inst, key, code, message, fx)

    def _fail_step(self, inst, key, code, message, fx):
        """The current step failed for good: announce it and undo what the
        completed requests did, last first."""
        step_name = inst["step_name"] or ""
        self.disarm(inst, fx)
        # The requests still unanswered may yet take effect (a timeout says
        # nothing of what happened): they are undone too, first. The one
        # refused in so many words is not. So a compensation must be
        # harmless where its request did nothing.
        step = self.current_step(inst)
        uncertain = []
        if step is not None:
            for k in sorted(inst["pending"]):
                if code == "timeout" or k != key:
                    try:
                        undo = step.compensation(inst["data"], k)
                    except Exception:  # noqa: BLE001 - as the Rust SDK: nothing to undo
                        undo = None
                    uncertain.append((k, undo))
        fx.unwait.extend(sorted(inst["pending"]))
        inst["pending"] = {}
        for k, compensation in uncertain:
            inst["done"].append({"step": step_name, "key": k, "compensation": compensation})
        failure = {"step": step_name, "key": key, "code": code, "message": message}
        note(inst, self.now_ms, "step_failed", step_name, dict(failure))
        fx.events.append(
            (
                "step_failed",
                {
                    "id": inst["id"],
                    "step": step_name,
                    "key": key,
                    "code": code,
                    "message": message,
                    "attempt": inst["attempt"],
                },
            )
        )
        inst["failure"] = failure
        inst["status"] = "compensating"
        # Requests with nothing to undo stay in the history only.
        inst["done"] = [d for d in inst["done"] if d.get("compensation") is not None]
        undo = to_undo(inst)
        note(inst, self.now_ms, "compensating", None, {"undo": undo})
        fx.events.append(
            ("compensating", {"id": inst["id"], "failed_step": step_name, "undo": undo})
        )
        self._next_compensation(inst, fx)

    def _next_compensation(self, inst, fx):
        """Sends the compensation of the last completed request, or ends the
        instance ``failed`` when none is left."""
        if not inst["done"]:
            self.disarm(inst, fx)
            inst["status"] = "failed"
            inst["step_name"] = None
            undone = undone_list(inst)
            note(inst, self.now_ms, "failed", None, {"undone": undone})
            fx.events.append(
                (
                    "failed",
                    {
                        "id": inst["id"],
                        "failure": inst["failure"],
                        "undone": undone,
                        "stuck": False,
                    },
                )
            )
            return
        last = inst["done"][-1]
        if last.get("compensation") is None:
            return
        inst["step_name"] = last["step"]
        inst["attempt"] = 1
        inst["pending"] = {last["key"]: last["compensation"]}
        self._send_pending(inst, fx)

    def _undid(self, inst, key, fx):
        if inst["pending"].pop(key, None) is None:
            return
        fx.unwait.append(key)
        self.disarm(inst, fx)
        done = inst["done"]
        for pos in range(len(done) - 1, -1, -1):
            if done[pos]["key"] == key:
                d = done.pop(pos)
                note(
                    inst,
                    self.now_ms,
                    "compensated",
                    d["step"],
                    {"key": key, "attempt": inst["attempt"]},
                )
                fx.events.append(
                    ("compensated", {"id": inst["id"], "step": d["step"], "key": key})
                )
                inst["undone"].append(d)
                break
        self._next_compensation(inst, fx)

    def _stuck(self, inst, key, code, message, fx):
        """A compensation failed every try: the instance is ``failed`` and
        stuck, its compensation still pending for an operator's retry."""
        self.disarm(inst, fx)
        inst["status"] = "failed"
        inst["stuck"] = True
        step = inst["step_name"]
        reason = (
            f"the compensation of {key or '?'} in step `{step or '?'}` failed "
            f"{inst['attempt']} time(s), last with {code}: {message}; "
            f"`pyou sagas retry {inst['id']}` tries it again"
        )
        note(inst, self.now_ms, "failed", step, {"stuck": True, "reason": reason})
        fx.events.append(
            (
                "failed",
                {
                    "id": inst["id"],
                    "failure": inst["failure"],
                    "undone": undone_list(inst),
                    "not_undone": to_undo(inst),
                    "stuck": True,
                    "reason": reason,
                },
            )
        )

    def _finish(self, inst, fx):
        self.disarm(inst, fx)
        inst["status"] = "completed"
        inst["step"] = len(self.saga.steps)
        inst["step_name"] = None
        note(inst, self.now_ms, "completed")
        fx.events.append(
            ("completed", {"id": inst["id"], "saga": inst["saga"], "data": inst["data"]})
        )

    def matchers(self):
        """Every matcher of every step, for the subscriptions."""
        for s in self.saga.steps:
            yield from s.completes
            yield from s.fails
            yield from s.undone
