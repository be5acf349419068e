"""The `notify` reactor, written in Python: a notification when a thread's
quantum runs out.

| listens to | keeps | sends |
|---|---|---|
| `thread.quantum.expired` | a document in `notifications` | `notes.capture {thread_id, text, tags: ["quantum"]}` |

| query | params | answer |
|---|---|---|
| `recent` | `{thread_id?, limit?}` (limit 1-100, default 20) | `{notifications: [...], count}`, newest first |

The note goes to the `notes` domain (`handlers/notes`), so the thread's
history shows when its time box ran out (`notes.search {thread_id}`); the
thread itself is left running, as the thread domain does: whether to park
it is the person's call. The host derives the command's message id from
this reactor and the event, so a redelivered event cannot capture the note
twice, and the command carries the event's session: a client sees the
note captured on its own session.

A notification's id is its time inverted, then the event's message id:
the store lists by id, so the newest come first without sorting.

Build: `scripts/build-polyglot` (componentize-py, world `reactor`).
"""

from parallel_you import Error, Reactor, command

NOTIFICATIONS = "notifications"
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Milliseconds since the epoch stay below this until the year 2286.
_INVERT = 10**13

reactor = Reactor("notify", "0.1.0").sends("notes.capture").index(NOTIFICATIONS, "thread_id")


def _text(thread):
    title = thread.get("title") or thread["id"]
    quantum = thread.get("quantum") or "its quantum"
    return f"Time box over: {quantum} on “{title}” (run {thread.get('run', 0)}) ran out."


@reactor.on("thread.quantum.expired")
def expired(ctx, event):
    thread = event.body
    thread_id = thread.get("id") if isinstance(thread, dict) else None
    if not isinstance(thread_id, str) or not thread_id:
        raise Error.validation("thread.quantum.expired without a thread `id`")
    at = event.timestamp_ms
    note_id = f"{_INVERT - min(at, _INVERT - 1):013d}-{event.message_id}"
    text = _text(thread)
    notifications = ctx.collection(NOTIFICATIONS)
    if notifications.get(note_id) is None:
        notifications.put(
            note_id,
            {
                "thread_id": thread_id,
                "title": thread.get("title"),
                "run": thread.get("run"),
                "quantum": thread.get("quantum"),
                "text": text,
                "session_id": event.meta.session_id,
                "at_ms": at,
            },
            0,
        )
    ctx.info(f"{thread_id}: {text}")
    return [command("notes.capture", {"thread_id": thread_id, "text": text, "tags": ["quantum"]})]


@reactor.query(
    "recent",
    "The latest quantum notifications, newest first, of one thread or all",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "thread_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
    },
)
def recent(ctx, params):
    limit = params.get("limit", DEFAULT_LIMIT)
    # A GET query string carries numbers as text.
    if isinstance(limit, str) and limit.isdigit():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise Error.validation(f"`limit` must be an integer from 1 to {MAX_LIMIT}")
    flt = {"$limit": limit}
    thread_id = params.get("thread_id")
    if thread_id is not None:
        if not isinstance(thread_id, str) or not 1 <= len(thread_id) <= 128:
            raise Error.validation("`thread_id` must be a string of 1 to 128 characters")
        flt["thread_id"] = thread_id
    docs = ctx.collection(NOTIFICATIONS).list(flt)
    found = [dict(d.value, id=d.id) for d in docs]
    return {"notifications": found, "count": len(found)}


EventReactor = reactor.export()
