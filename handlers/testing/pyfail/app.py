"""Test-only Python handler (domain `pyfail`): misbehaviour the host must
contain, kept out of the bundled `notes` handler.

| command | what it does |
|---|---|
| `pyfail.raise` | raises an exception the handler did not mean to (→ `handler_error`) |
| `pyfail.abort` | raises `SystemExit`, which the helper does not catch (→ `trap`) |
| `pyfail.spin` | loops forever (→ `timeout`) |
| `pyfail.hog` | allocates 1 MiB after 1 MiB without bound (→ `memory_limit`) |
| `pyfail.count` | adds one to a module-level counter and answers `pyfail.counted {n}`: 1 on a fresh instance, more only if an instance is reused |
| `pyfail.ok` | answers `pyfail.fine {}` |
| `pyfail.later` | `{delay_ms}`: schedules `pyfail.ok`, answers `pyfail.scheduled {timer}` |
| `pyfail.cancel` | `{timer}`: cancels it, answers `pyfail.cancelled {cancelled}` |
"""

from parallel_you import Router, event

router = Router("pyfail", "0.1.0").emits(
    "pyfail.counted", "pyfail.fine", "pyfail.scheduled", "pyfail.cancelled"
)

_count = 0


@router.command("pyfail.raise", "Raise an unexpected exception")
def raise_(ctx, body):
    return {}["no such key"]


@router.command("pyfail.abort", "Raise SystemExit past the helper (a trap)")
def abort(ctx, body):
    raise SystemExit(3)


@router.command("pyfail.spin", "Loop forever")
def spin(ctx, body):
    n = 0
    while True:
        n += 1


@router.command("pyfail.hog", "Allocate memory without bound")
def hog(ctx, body):
    hoard = []
    while True:
        hoard.append(bytearray(b"\xa5" * (1 << 20)))


@router.command("pyfail.count", "Count calls seen by this instance")
def count(ctx, body):
    global _count
    _count += 1
    return [event("pyfail.counted", {"n": _count})]


@router.command("pyfail.ok", "Answer pyfail.fine")
def ok(ctx, body):
    return [event("pyfail.fine")]


@router.command("pyfail.later", "Schedule pyfail.ok")
def later(ctx, body):
    timer = ctx.schedule(body.get("delay_ms", 0), "pyfail.ok", {})
    return [event("pyfail.scheduled", {"timer": timer})]


@router.command("pyfail.cancel", "Cancel a timer")
def cancel(ctx, body):
    return [event("pyfail.cancelled", {"cancelled": ctx.cancel(body["timer"])})]


CommandHandler = router.export()
