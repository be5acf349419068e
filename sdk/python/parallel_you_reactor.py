"""The reactor side of the Parallel You Python helper (world ``reactor``,
``wit/reactor.wit``). Import it from :mod:`parallel_you`, which re-exports
:class:`Reactor`, :class:`Delivered`, :func:`command` and
:func:`topic_matches`; see its docstring and ``handlers/notify/app.py``.
"""

import json

from componentize_py_types import Err

from parallel_you import (
    Error,
    QueryCtx,
    ReactorCtx,
    _dumps,
    _Route,
    _unexpected,
    exports,
    reactor_types,
    types,
)

__all__ = ["Delivered", "Reactor", "command", "topic_matches"]

def command(routing_key, body=None):
    """A command for a reactor to send: ``body`` is any JSON value (default
    ``{}``); its routing key must be one the reactor ``sends``. The host
    fills in the meta from the event that caused it."""
    if reactor_types is None:
        raise RuntimeError("command() is for reactors: build with world `reactor`")
    return reactor_types.CommandToSend(
        routing_key=routing_key, body=_dumps({} if body is None else body)
    )


def topic_matches(pattern, routing_key):
    """Whether the AMQP topic ``pattern`` matches ``routing_key``: ``*``
    matches exactly one ``.``-separated segment, ``#`` zero or more.
    Linear in pattern × key (no backtracking)."""
    key = routing_key.split(".")
    reach = [True] + [False] * len(key)
    for seg in pattern.split("."):
        if seg == "#":
            on = False
            nxt = []
            for r in reach:
                on = on or r
                nxt.append(on)
        else:
            nxt = [False] * (len(key) + 1)
            for j, k in enumerate(key):
                if reach[j] and (seg == "*" or seg == k):
                    nxt[j + 1] = True
        reach = nxt
    return reach[len(key)]


class Delivered:
    """An event delivered to a reactor: its ``meta`` and its parsed ``body``."""

    __slots__ = ("meta", "body")

    def __init__(self, meta, body):
        self.meta = meta
        self.body = body

    @property
    def routing_key(self):
        return self.meta.routing_key

    @property
    def message_id(self):
        """The event's unique id (a ULID), the same for every delivery."""
        return self.meta.message_id

    @property
    def timestamp_ms(self):
        """When the event was created, in ms since the Unix epoch: the same
        for every delivery of it."""
        return self.meta.timestamp_ms


def _parse(text, what):
    try:
        return json.loads(text if text.strip() else "{}")
    except ValueError as e:
        raise Error.validation(f"invalid {what}: {e}") from None


def _as_wit_error(exc):
    return (exc if isinstance(exc, Error) else _unexpected(exc)).to_wit()


class Reactor:
    """A reactor's domain, version, subscriptions, queries, indexes and the
    commands it may send.

    An event goes to the **first registered** function whose pattern
    matches its routing key (register specific patterns before broad ones),
    like the Rust SDK's ``Reactor``.
    """

    def __init__(self, domain, version):
        self.domain = domain
        self.version = version
        self._events = []  # (pattern, subscribed, fn)
        self._queries = {}
        self._indexes = []
        self._sends = []

    def on(self, pattern):
        """Decorator subscribing ``fn(ctx, event)`` to the events matching
        ``pattern`` (``*`` one segment, ``#`` zero or more); ``event`` is a
        :class:`Delivered`. It returns a list of :func:`command` (or
        ``None``)."""

        def register(fn):
            self._events.append((pattern, True, fn))
            return fn

        return register

    def on_timer(self, routing_key):
        """Decorator handling this reactor's own timers of ``routing_key``
        (delivered to it alone, so not a subscription)."""

        def register(fn):
            self._events.append((routing_key, False, fn))
            return fn

        return register

    def query(self, name, summary, schema=None):
        """Decorator adding a query served at ``/api/query/<domain>/<name>``:
        ``fn(ctx, params)`` gets a :class:`QueryCtx` and the parameters
        object (a dict) and returns any JSON value. ``schema`` is the JSON
        Schema of the parameters (a dict), published in the manifest."""

        def register(fn):
            if name in self._queries:
                raise ValueError(f"query {name} is declared twice")
            self._queries[name] = _Route(name, summary, schema, fn)
            return fn

        return register

    def index(self, collection, *fields):
        """Asks the store to index ``fields`` (in order) of ``collection``."""
        self._indexes.append((collection, list(fields)))
        return self

    def sends(self, *routing_keys):
        """Declares the commands it may send (the host refuses others)."""
        self._sends.extend(routing_keys)
        return self

    def manifest(self):
        return reactor_types.ReactorManifest(
            domain=self.domain,
            version=self.version,
            subscribes=[p for p, subscribed, _ in self._events if subscribed],
            sends=list(self._sends),
            queries=[
                reactor_types.QueryInfo(
                    name=q.key, summary=q.summary, params_schema=q.schema_json
                )
                for q in self._queries.values()
            ],
            indexes=[
                types.IndexInfo(collection=c, fields=f) for c, f in self._indexes
            ],
        )

    def dispatch(self, ctx, body_text):
        """Runs the first function whose pattern matches ``ctx.routing_key``;
        returns its commands or raises :class:`Error`."""
        key = ctx.routing_key
        for pattern, _, fn in self._events:
            if topic_matches(pattern, key):
                body = _parse(body_text, "event body")
                return list(fn(ctx, Delivered(ctx.meta, body)) or [])
        raise Error(
            "unknown_routing_key",
            f"the `{self.domain}` reactor has no function for `{key}`",
            {"routing_key": key, "patterns": [p for p, _, _ in self._events]},
        )

    def answer(self, name, params_text):
        """Answers query ``name`` as JSON text or raises :class:`Error`."""
        q = self._queries.get(name)
        if q is None:
            raise Error.not_found(
                f"the `{self.domain}` reactor has no query `{name}`",
                {"query": name, "queries": list(self._queries)},
            )
        params = _parse(params_text, "params")
        if not isinstance(params, dict):
            raise Error.validation("invalid params: expected a JSON object")
        return _dumps(q.run(QueryCtx(), params))

    def export(self):
        """The class componentize-py exports as ``event-reactor``: assign it
        to ``EventReactor`` at the top level of the app module, and build
        with ``-w reactor``."""
        reactor = self

        class EventReactor(exports.EventReactor):
            def manifest(self):
                return reactor.manifest()

            def on_event(self, event):
                try:
                    return reactor.dispatch(ReactorCtx(event.meta), event.body)
                except Exception as e:  # noqa: BLE001 - never trap on an error
                    raise Err(_as_wit_error(e)) from None

            def query(self, name, params):
                try:
                    return reactor.answer(name, params)
                except Exception as e:  # noqa: BLE001
                    raise Err(_as_wit_error(e)) from None

        return EventReactor
