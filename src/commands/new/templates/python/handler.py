"""The `{{name}}` domain: a Parallel You command handler in Python.

| command | body | answer |
|---|---|---|
| `{{name}}.hello` | `{name}` | `{{name}}.greeted {greeting, times}` |

Build with `pyou build`, try with
`pyou invoke --handlers dist {{name}}.hello '{"name":"Ada"}'`.
"""

from parallel_you import Router, event

router = Router("{{name}}", "0.1.0").emits("{{name}}.greeted")

# Checked by the host before the handler runs: a bad body never gets here.
HELLO = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100}},
}


@router.command("{{name}}.hello", "Greet someone and count the greetings", schema=HELLO)
def hello(ctx, body):
    tallies = ctx.collection("tallies")
    doc = tallies.get(body["name"])
    times = (doc.value["times"] if doc else 0) + 1
    # Optimistic concurrency: a concurrent greeting makes this a `conflict`.
    tallies.put(body["name"], {"times": times}, doc.version if doc else 0)
    ctx.info(f"greeted {body['name']}")
    return [event("{{name}}.greeted", {"greeting": f"Hello, {body['name']}!", "times": times})]


CommandHandler = router.export()
