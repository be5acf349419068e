"""Write Parallel You command handlers in Python.

A handler is a WebAssembly component built with ``componentize-py`` from the
``parallel-you:handler`` world (``wit/handler.wit``). This module wraps the
generated bindings in the same shape as the Rust SDK (``sdk/src/lib.rs``):

* a :class:`Router` declares the domain, its commands (full routing key,
  summary, optional JSON Schema of the body, and a function taking the
  parsed body), the events it may publish and the indexes its store
  should keep (:meth:`Router.index`);
* each command function receives a :class:`Ctx` (the command's meta, the
  domain's document store through :class:`Collection`, early
  :meth:`Ctx.emit`, timers with :meth:`Ctx.schedule`, logging) and returns
  the events it caused (a list of :func:`event`), or raises :class:`Error`;
* ``CommandHandler = router.export()`` at the top level of the app module
  exports it as the component's ``command-handler``.

What the router does for every command, like the Rust SDK:

* a body that is not JSON or not an object is refused with code
  ``validation`` (the command's schema is checked by the host before the
  component runs: see ``core/src/schema.rs`` for the subset it supports);
* a routing key the router does not know is refused with
  ``unknown_routing_key``;
* a store error becomes ``conflict`` (context ``{"current_version": n}``),
  ``not_found``, ``invalid_request`` or ``unavailable``;
* any other exception becomes code ``handler_error`` with the exception's
  type and message (and the last lines of its traceback as context): an
  error event, not a trap.

Reactors (world ``reactor``, ``wit/reactor.wit``) use the same module: a
:class:`Reactor` subscribes functions to event patterns with
``@reactor.on("thread.*")`` (the first registered match runs; ``fn(ctx,
event)`` gets a :class:`ReactorCtx` and a :class:`Delivered` and returns a
list of :func:`command`), answers queries declared with
``@reactor.query(name, summary, schema=…)`` (``fn(ctx, params)`` gets a
:class:`QueryCtx`, returns any JSON value), and is exported with
``EventReactor = reactor.export()``; build it with ``-w reactor``. Errors
map as for handlers. See ``handlers/notify/app.py``.

Each command runs in a fresh instance of the component, but the module's
top level runs once, at build time (componentize-py snapshots the
initialised interpreter), so building the router there costs nothing per
command.

Example (``app.py``)::

    from parallel_you import Router, Error, event

    router = Router("greet", "0.1.0").emits("greet.greeted")

    @router.command("greet.hello", "Say hello", schema={
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}},
    })
    def hello(ctx, body):
        return [event("greet.greeted", {"text": "hello " + body["name"]})]

    CommandHandler = router.export()
"""

import json
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, scheduler, store, types

# Each world has its own imports: `reactor_types` only `reactor` (both
# import `emitter` since the reactor world does). The bindings are
# generated for the world being built.
try:
    from wit_world.imports import emitter
except ImportError:
    emitter = None
try:
    from wit_world.imports import reactor_types
except ImportError:
    reactor_types = None

__all__ = [
    "Router",
    "Reactor",
    "Ctx",
    "ReactorCtx",
    "QueryCtx",
    "Delivered",
    "Collection",
    "Doc",
    "Error",
    "event",
    "command",
    "topic_matches",
]

# The longest message kept from an unexpected exception, in characters.
_MAX_MESSAGE = 1000
# How many traceback lines an unexpected exception reports.
_TRACEBACK_LINES = 12


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class Error(Exception):
    """Why a command was refused: becomes the WIT ``handler-error`` and so
    the error event ``<domain>.error`` with ``code``, ``message`` and
    ``context``.

    ``code`` is machine-readable snake_case; ``context`` is any JSON value
    with details.
    """

    def __init__(self, code, message, context=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.context = context

    @classmethod
    def validation(cls, message, context=None):
        """Code ``validation``: the command's body is wrong."""
        return cls("validation", message, context)

    @classmethod
    def not_found(cls, message, context=None):
        """Code ``not_found``: what the command refers to does not exist."""
        return cls("not_found", message, context)

    @classmethod
    def invalid_transition(cls, message, context=None):
        """Code ``invalid_transition``: not allowed in the current state."""
        return cls("invalid_transition", message, context)

    @classmethod
    def conflict(cls, current_version):
        """Code ``conflict``: an expected version did not match."""
        return cls(
            "conflict",
            f"version conflict: the current version is {current_version}",
            {"current_version": current_version},
        )

    @classmethod
    def internal(cls, message, context=None):
        """Code ``handler_error``: nothing more specific fits."""
        return cls("handler_error", message, context)

    @classmethod
    def from_store(cls, err):
        """Maps a WIT ``store-error`` the way the Rust SDK does."""
        if isinstance(err, store.StoreError_Conflict):
            return cls.conflict(err.value)
        if isinstance(err, store.StoreError_NotFound):
            return cls.not_found("document not found")
        if isinstance(err, store.StoreError_Invalid):
            return cls("invalid_request", err.value)
        if isinstance(err, store.StoreError_Unavailable):
            return cls("unavailable", err.value)
        return cls.internal(f"unexpected store error: {err!r}")

    def to_wit(self):
        context = None if self.context is None else _dumps(self.context)
        return types.HandlerError(code=self.code, message=self.message, context=context)


def _unexpected(exc):
    """An exception the handler did not mean to raise, as ``handler_error``."""
    message = f"{type(exc).__name__}: {exc}"
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines).rstrip().splitlines()[-_TRACEBACK_LINES:]
    return Error.internal(
        f"the handler raised {message}",
        {"exception": type(exc).__name__, "traceback": tail},
    )


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------
# Events and context
# ---------------------------------------------------------------------------


def event(routing_key, body=None):
    """An event to return (or emit): ``body`` is any JSON value (default
    ``{}``); the host fills in the meta from the command."""
    return types.Event(routing_key=routing_key, body=_dumps({} if body is None else body))


class Doc:
    """A stored document: ``id``, ``version`` and the decoded ``value``."""

    __slots__ = ("id", "version", "value")

    def __init__(self, id, version, value):
        self.id = id
        self.version = version
        self.value = value

    def __repr__(self):
        return f"Doc(id={self.id!r}, version={self.version}, value={self.value!r})"


def _store_call(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        raise Error.from_store(e.value) from None


def _decode(collection, d):
    try:
        return Doc(d.id, d.version, json.loads(d.json))
    except ValueError as e:
        raise Error.internal(
            f"stored document `{d.id}` in `{collection}` does not decode: {e}"
        ) from None


class Collection:
    """One collection of the domain's document store, JSON in and out."""

    def __init__(self, name):
        self.name = name

    def get(self, id):
        """The document with this id as a :class:`Doc`, or ``None``."""
        d = _store_call(store.get, self.name, id)
        return None if d is None else _decode(self.name, d)

    def require(self, id):
        """The document with this id, or :class:`Error` ``not_found``."""
        doc = self.get(id)
        if doc is None:
            raise Error.not_found(
                f"no `{id}` in `{self.name}`", {"collection": self.name, "id": id}
            )
        return doc

    def list(self, filter=None):
        """The documents matching ``filter`` (a dict: ``{"field": value}``,
        ``{"f": {"$ne"|"$in"|"$exists"|"$contains": …}}``, ``"$limit": n``),
        ordered by id."""
        docs = _store_call(store.list, self.name, _dumps(filter or {}))
        return [_decode(self.name, d) for d in docs]

    def put(self, id, value, expected_version=None):
        """Writes ``value`` (a JSON object) and returns the new version.
        ``expected_version``: ``None`` writes unconditionally, ``0`` only
        creates, ``v`` only replaces version ``v`` (else ``conflict``)."""
        return _store_call(store.upsert, self.name, id, _dumps(value), expected_version)

    def delete(self, id):
        """Deletes a document; ``True`` if it existed."""
        return _store_call(store.delete, self.name, id)

    def clear(self):
        """Deletes every document of the collection."""
        _store_call(store.clear, self.name)


class QueryCtx:
    """What a reactor's query function gets besides its parameters: the
    domain's store (read-only: the host fails any write) and logging."""

    def collection(self, name):
        """A collection of the domain's document store."""
        return Collection(name)

    def log(self, level, message):
        log.log(level, str(message))

    def debug(self, message):
        self.log(log.Level.DEBUG, message)

    def info(self, message):
        self.log(log.Level.INFO, message)

    def warn(self, message):
        self.log(log.Level.WARN, message)

    def error(self, message):
        self.log(log.Level.ERROR, message)


class ReactorCtx(QueryCtx):
    """What a reactor's event function gets besides the event: the event's
    meta, the domain's store, timers, events of its own domain
    (:meth:`emit`) and logging."""

    def __init__(self, meta):
        self.meta = meta

    @property
    def routing_key(self):
        return self.meta.routing_key

    @property
    def message_id(self):
        """The message's unique id (a ULID: sortable by time)."""
        return self.meta.message_id

    @property
    def correlation_id(self):
        return self.meta.correlation_id

    @property
    def session_id(self):
        return self.meta.session_id

    @property
    def user_id(self):
        """Who sent the command: the subject of the token the gateway
        verified (``None`` without authentication)."""
        return self.meta.user_id

    @property
    def timestamp_ms(self):
        """When the message was created, in ms since the Unix epoch."""
        return self.meta.timestamp_ms

    def schedule(self, delay_ms, routing_key, body=None):
        """Has ``routing_key`` (of this component's own domain) with
        ``body`` delivered after ``delay_ms``, surviving host restarts: to a
        handler as that command, with this command's session and reply
        channel; to a reactor as an event to itself. Returns the timer id."""
        return _store_call(
            scheduler.schedule, int(delay_ms), routing_key, _dumps({} if body is None else body)
        )

    def cancel(self, timer_id):
        """Cancels a timer of this domain; ``True`` if it was still pending."""
        return _store_call(scheduler.cancel, timer_id)

    def emit(self, routing_key, body=None):
        """Adds an event of this component's own domain to the unit of work:
        published when it commits (a handler's before the events it returns,
        a reactor's before the commands it returns), never if it fails."""
        emitter.emit(event(routing_key, body))


class Ctx(ReactorCtx):
    """What a command function gets besides its body: the command's meta,
    the store, early events (:meth:`ReactorCtx.emit`), timers and logging."""


# ---------------------------------------------------------------------------
# Router and export
# ---------------------------------------------------------------------------


class _Route:
    __slots__ = ("key", "summary", "schema_json", "internal", "run")

    def __init__(self, key, summary, schema, run, internal=False):
        self.key = key
        self.summary = summary
        self.schema_json = None if schema is None else _dumps(schema)
        self.internal = internal
        self.run = run


class Router:
    """A handler's domain, version, commands, events and indexes."""

    def __init__(self, domain, version):
        self.domain = domain
        self.version = version
        self._routes = {}
        self._events = []
        self._indexes = []

    def command(self, routing_key, summary, schema=None, internal=False):
        """Decorator adding a command: its full routing key
        (``<domain>.<name>``), a one-line summary and, optionally, the JSON
        Schema of its body (a dict), published in the manifest and checked by
        the host before the function runs. The function gets ``(ctx, body)`` with the
        body parsed (an empty body counts as ``{}``) and returns a list of
        events. ``internal=True``: only this component's own timers send it
        (the gateway refuses it from clients and leaves it out of ``/api``)."""

        def register(fn):
            if routing_key in self._routes:
                raise ValueError(f"{routing_key} is declared twice")
            self._routes[routing_key] = _Route(routing_key, summary, schema, fn, internal)
            return fn

        return register

    def emits(self, *routing_keys):
        """Declares routing keys of events it may publish (documentation)."""
        self._events.extend(routing_keys)
        return self

    def index(self, collection, *fields):
        """Asks the store to index ``fields`` (in order; ``a.b`` reaches
        into nested objects) of ``collection``, for the ``list`` filters and
        sorts its commands run. The host creates it when it loads the
        component; an index changes how fast ``list`` answers, never what."""
        self._indexes.append((collection, list(fields)))
        return self

    def manifest(self):
        return types.Manifest(
            domain=self.domain,
            version=self.version,
            commands=[
                types.CommandInfo(
                    routing_key=r.key,
                    summary=r.summary,
                    body_schema=r.schema_json,
                    internal=r.internal,
                )
                for r in self._routes.values()
            ],
            events=list(self._events),
            indexes=[
                types.IndexInfo(collection=c, fields=f) for c, f in self._indexes
            ],
        )

    def dispatch(self, ctx, body_text):
        """Runs the command for ``ctx.routing_key``; returns its events or
        raises :class:`Error`."""
        route = self._routes.get(ctx.routing_key)
        if route is None:
            raise Error(
                "unknown_routing_key",
                f"the `{self.domain}` handler has no command `{ctx.routing_key}`",
                {"routing_key": ctx.routing_key, "commands": list(self._routes)},
            )
        text = body_text if body_text.strip() else "{}"
        try:
            body = json.loads(text)
        except ValueError as e:
            raise Error.validation(f"invalid body: {e}") from None
        if not isinstance(body, dict):
            raise Error.validation("invalid body: expected a JSON object")
        events = route.run(ctx, body)
        return list(events or [])

    def handle(self, cmd):
        """The export's ``handle``: events, or ``Err(handler-error)``; never
        lets an exception escape (that would trap the instance)."""
        try:
            return self.dispatch(Ctx(cmd.meta), cmd.body)
        except Error as e:
            raise Err(e.to_wit()) from None
        except Exception as e:  # noqa: BLE001 - every failure becomes an event
            raise Err(_unexpected(e).to_wit()) from None

    def export(self):
        """The class componentize-py exports as ``command-handler``: assign
        it to ``CommandHandler`` at the top level of the app module."""
        router = self

        class CommandHandler(exports.CommandHandler):
            def manifest(self):
                return router.manifest()

            def handle(self, cmd):
                return router.handle(cmd)

        return CommandHandler


# The reactor side lives in its own module; imported last, when every name
# it takes from this one exists, so both halves are one API.
from parallel_you_reactor import Delivered, Reactor, command, topic_matches  # noqa: E402
