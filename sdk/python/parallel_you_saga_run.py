"""A saga as a reactor, for the Python saga helper (a port of the Rust
SDK's ``sdk/src/saga/run.rs``): events start instances or answer their
requests (found through the ``waits`` collection), timers come back as the
saga's own events, and each change of an instance is written over the
version read, its events emitted and its commands returned, all in the
event's one unit of work. Starts sweep finished instances past the
retention.
"""

from parallel_you import Error, Reactor, topic_matches
from parallel_you_reactor import command
from parallel_you_saga_documents import (
    INSTANCES,
    UNREADABLE,
    WAITS,
    is_int,
    add_queries,
    json_value,
    why_unreadable,
)
from parallel_you_saga_machine import MAX_HELD, Effects, Machine, key_at, note

# Finished instances past their retention deleted per start: more than
# one, so the sweep outpaces the starts that add instances.
SWEEP_PER_START = 4


def _usable_key(key):
    """A document id is printable and at most 1 KiB; keys of other shapes
    cannot be waited for."""
    return 0 < len(key.encode()) <= 1024 and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in key
    )


def _to_send(cmd):
    return command(cmd["routing_key"], cmd["body"])

class Runner:
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
        add_queries(r)
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
        inst, fx = machine.start(id, json_value(data), ev.meta.session_id)
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
        if not isinstance(id, str) or not is_int(seq):
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
        why = why_unreadable(inst)
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
                data = json_value(self.saga._migrate(old, inst["data"]))
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
