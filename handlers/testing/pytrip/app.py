"""Test saga `pytrip` 1.0.0 (state schema 1): the Python twin of
`handlers/testing/trip`, over the `ledger` test handler.

Started by `ledger.begun {run, a, b, c}`: three steps `a`, `b`, `c`, each
`ledger.apply {key: "<run>-<step>", mode: <the plan's mode>}`, answered by
`ledger.applied` (or the error `ledger.error` with `context.key`), undone
by `ledger.revert` (answered `ledger.reverted`). Steps `a` and `c` wait
1 s per try, `b` 30 s; two tries each, 200 ms apart, on `timeout`.

Build: `scripts/build-polyglot` (componentize-py, world `reactor`).
"""

from parallel_you import Error, command
from parallel_you_saga import Request, Retry, Saga, Step


def _start(ev):
    return ev.body if isinstance(ev.body, dict) and "run" in ev.body else None


def _step(name, timeout_ms):
    def send(state):
        run = state.get("run")
        if not isinstance(run, str):
            raise Error.validation("no `run`")
        key = f"{run}-{name}"
        return [Request(key, "ledger.apply", {"key": key, "mode": state.get(name, "ok")})]

    return (
        Step(name, send)
        .completes_on("ledger.applied", "/key")
        .fails_on("ledger.error", "/context/key")
        .compensate(
            lambda _state, key: command("ledger.revert", {"key": key}),
            "ledger.reverted",
            "/key",
        )
        .timeout(timeout_ms)
        .retry(Retry(max_attempts=2, first_backoff_ms=200, max_backoff_ms=200, on=("timeout",)))
    )


saga = Saga("pytrip", "1.0.0").state_version(1).starts_on("ledger.begun", _start)
for _name, _wait in (("a", 1_000), ("b", 30_000), ("c", 1_000)):
    saga.step(_step(_name, _wait))
saga.sends("ledger.apply", "ledger.revert")

EventReactor = saga.reactor().export()
