"""The `{{name}}` reactor in Python: counts the events it sees, per routing key.

| listens to | keeps | query |
|---|---|---|
| `counter.*` (change `SUBSCRIBES`) | `counts`: one document per routing key | `counts` -> `{routing_key: n}` |

Build with `pyou build`, try with `pyou query --handlers dist {{name}} counts`.
"""

from parallel_you import Reactor

# The events this reactor hears (`*` one segment, `#` any number).
SUBSCRIBES = "counter.*"
COUNTS = "counts"

reactor = Reactor("{{name}}", "0.1.0")


@reactor.on(SUBSCRIBES)
def count(ctx, event):
    counts = ctx.collection(COUNTS)
    doc = counts.get(event.routing_key)
    n = (doc.value["n"] if doc else 0) + 1
    # The host runs each event once in effect: a redelivery changes nothing.
    counts.put(event.routing_key, {"n": n}, doc.version if doc else 0)
    ctx.debug(f"{event.routing_key}: {n}")
    return []


@reactor.query("counts", "How many events of each routing key were seen")
def counts(ctx, params):
    return {d.id: d.value["n"] for d in ctx.collection(COUNTS).list({"$limit": 1000})}


EventReactor = reactor.export()
