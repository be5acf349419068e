"""A saga's documents, as the Python saga helper keeps them: the
collections, what an instance document must hold to be run, and the
queries ``saga_list``/``saga_show`` that read them. The format is the Rust
SDK's, written down once in ``docs/saga-state.md``.
"""

import json

from parallel_you import Error
from parallel_you_saga_machine import STATUSES

# One document per instance, keyed by its id.
INSTANCES = "instances"
# Request key -> the instance waiting for its answer.
WAITS = "waits"
# Instances whose document this version cannot read at all, with why.
UNREADABLE = "unreadable"
# Most instances one `saga_list` answers.
MAX_LIST = 500


def json_value(value):
    """``value`` as JSON would give it back (tuples become lists, …), or
    :class:`Error` ``validation`` when it is not JSON at all."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise Error.validation(f"a request body is not JSON: {e}") from None


def is_int(v):
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


def why_unreadable(doc):
    """Why an instance document is not one this module can run (``None``:
    it is): the checks the Rust SDK's typed document makes."""
    if not isinstance(doc, dict):
        return "it is not a JSON object"
    fields = {
        "id": lambda v: isinstance(v, str),
        "saga": lambda v: isinstance(v, str),
        "schema_version": is_int,
        "status": lambda v: v in STATUSES,
        "step": is_int,
        "attempt": is_int,
        "pending": lambda v: isinstance(v, dict) and all(_is_cmd(c) for c in v.values()),
        "done": lambda v: isinstance(v, list) and all(_is_done(d) for d in v),
        "undone": lambda v: isinstance(v, list) and all(_is_done(d) for d in v),
        "stuck": lambda v: isinstance(v, bool),
        "seq": is_int,
        "started_ms": is_int,
        "updated_ms": is_int,
        "history": lambda v: isinstance(v, list),
        "history_dropped": is_int,
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
        and is_int(v.get("seq")),
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


def add_queries(r):
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
    limit = min(max(limit if is_int(limit) else 100, 1), MAX_LIST)
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
    if why_unreadable(inst) is None:
        answer["timers"] = [] if inst["timer"] is None else [inst["timer"]]
        answer["compensations"] = [
            {"step": d["step"], "key": d["key"], "command": d["compensation"]}
            for d in reversed(inst["done"])
            if d.get("compensation") is not None
        ]
    return answer
