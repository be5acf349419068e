// Test-only JavaScript handler (domain `jsfail`): misbehaviour the host must
// contain, kept out of the bundled `stats` handler.
//
// | command | what it does |
// |---|---|
// | `jsfail.throw` | throws a TypeError the handler did not mean to (→ `handler_error`) |
// | `jsfail.spin` | loops forever (→ `timeout`) |
// | `jsfail.hog` | allocates 1 MiB after 1 MiB without bound (→ `memory_limit`) |
// | `jsfail.count` | adds one to a module-level counter: `jsfail.counted {n}` |
// | `jsfail.ok` | answers `jsfail.fine {}` |
// | `jsfail.later` | `{delay_ms}`: schedules `jsfail.ok`, answers `jsfail.scheduled {timer}` |
// | `jsfail.cancel` | `{timer}`: cancels it, answers `jsfail.cancelled {cancelled}` |

import { Router, event } from "../../../sdk/js/parallel-you.js";

let count = 0;

const router = new Router("jsfail", "0.1.0")
  .command("jsfail.throw", "Throw an unexpected TypeError", null, () => {
    const missing = undefined;
    return missing.property;
  })
  .command("jsfail.spin", "Loop forever", null, () => {
    let n = 0;
    for (;;) n = (n + 1) | 0;
  })
  .command("jsfail.hog", "Allocate memory without bound", null, () => {
    const hoard = [];
    for (;;) hoard.push(new Uint8Array(1 << 20).fill(0xa5));
  })
  .command("jsfail.count", "Count calls seen by this instance", null, () => {
    count += 1;
    return [event("jsfail.counted", { n: count })];
  })
  .command("jsfail.ok", "Answer jsfail.fine", null, () => [event("jsfail.fine")])
  .command("jsfail.later", "Schedule jsfail.ok", null, (ctx, body) => [
    event("jsfail.scheduled", { timer: ctx.schedule(body.delay_ms ?? 0, "jsfail.ok", {}) }),
  ])
  .command("jsfail.cancel", "Cancel a timer", null, (ctx, body) => [
    event("jsfail.cancelled", { cancelled: ctx.cancel(body.timer) }),
  ])
  .emits("jsfail.counted", "jsfail.fine", "jsfail.scheduled", "jsfail.cancelled");

export const commandHandler = router.export();
