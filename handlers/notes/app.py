"""The `notes` domain, written in Python: notes captured against a thread.

| command | body | answer |
|---|---|---|
| `notes.capture` | `{thread_id, text, tags?}` | `notes.captured {id, thread_id, text, tags, created_ms, version}` |
| `notes.search` | `{query?, thread_id?, tag?, limit?}` | `notes.found {notes: [...], count}` |
| `notes.delete` | `{id}` | `notes.deleted {id}` (`not_found` if there is none) |

Notes live in the `notes` collection of the domain's store. A note's id is
the capturing command's message id (a ULID), so notes list in the order they
were captured and a redelivered capture cannot store a note twice. Tags are
normalised to lowercase and also kept as the object `tag_set` (`{"work":
true}`), so that the store's filter answers "has tag t" as `tag_set.t`.

Build: `scripts/build-polyglot` (componentize-py); see docs/languages.md.
"""

import re

from parallel_you import Error, Router, event

COLLECTION = "notes"
MAX_TEXT = 10_000
MAX_TAGS = 20
TAG = re.compile(r"^[a-z0-9_-]{1,32}$")

THREAD_ID = {"type": "string", "minLength": 1, "maxLength": 128}
TAG_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 32}

# `notes.search` by thread lists on `thread_id`: declared, the host indexes it.
router = (
    Router("notes", "0.1.0")
    .emits("notes.captured", "notes.found", "notes.deleted")
    .index(COLLECTION, "thread_id")
)


def _tags(raw):
    tags = []
    for t in raw:
        t = t.strip().lower()
        if not TAG.match(t):
            raise Error.validation(
                f"tag {t!r} must be 1 to 32 characters of a-z, 0-9, `_` or `-`",
                {"tag": t},
            )
        if t not in tags:
            tags.append(t)
    return tags


def _public(doc):
    note = {k: v for k, v in doc.value.items() if k != "tag_set"}
    note["id"] = doc.id
    note["version"] = doc.version
    return note


@router.command(
    "notes.capture",
    "Capture a note against a thread",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["thread_id", "text"],
        "properties": {
            "thread_id": THREAD_ID,
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
            "tags": {"type": "array", "maxItems": MAX_TAGS, "items": TAG_SCHEMA},
        },
    },
)
def capture(ctx, body):
    text = body["text"]
    if not text.strip():
        raise Error.validation("`text` must not be blank")
    tags = _tags(body.get("tags", []))
    note = {
        "thread_id": body["thread_id"],
        "text": text,
        "tags": tags,
        "tag_set": {t: True for t in tags},
        "created_ms": ctx.timestamp_ms,
    }
    notes = ctx.collection(COLLECTION)
    note_id = ctx.message_id
    # `0`: create only. The id is the command's own, so a clash means the
    # same capture ran before.
    version = notes.put(note_id, note, expected_version=0)
    ctx.info(f"note {note_id} captured on thread {note['thread_id']}")
    del note["tag_set"]
    return [event("notes.captured", dict(note, id=note_id, version=version))]


@router.command(
    "notes.search",
    "Find notes by text, thread or tag (all optional, combined with AND)",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "maxLength": 200},
            "thread_id": THREAD_ID,
            "tag": TAG_SCHEMA,
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    },
)
def search(ctx, body):
    flt = {"$limit": body.get("limit", 100)}
    if body.get("query"):
        flt["text"] = {"$contains": body["query"]}
    if "thread_id" in body:
        flt["thread_id"] = body["thread_id"]
    if "tag" in body:
        (tag,) = _tags([body["tag"]])
        flt["tag_set." + tag] = True
    found = [_public(d) for d in ctx.collection(COLLECTION).list(flt)]
    return [event("notes.found", {"notes": found, "count": len(found)})]


@router.command(
    "notes.delete",
    "Delete a note",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 128}},
    },
)
def delete(ctx, body):
    if not ctx.collection(COLLECTION).delete(body["id"]):
        raise Error.not_found(f"no note `{body['id']}`", {"id": body["id"]})
    return [event("notes.deleted", {"id": body["id"]})]


CommandHandler = router.export()
