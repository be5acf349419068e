// The `{{name}}` reactor in JavaScript: counts the events it sees, per
// routing key.
//
// | listens to | keeps | query |
// |---|---|---|
// | `counter.*` (change `SUBSCRIBES`) | `counts`: one document per routing key | `counts` -> `{routing_key: n}` |
//
// Build with `pyou build`, try with `pyou query --handlers dist {{name}} counts`.

import { Reactor } from "parallel-you";

// The events this reactor hears (`*` one segment, `#` any number).
const SUBSCRIBES = "counter.*";
const COUNTS = "counts";

const reactor = new Reactor("{{name}}", "0.1.0")
  .on(SUBSCRIBES, (ctx, ev) => {
    const counts = ctx.collection(COUNTS);
    const doc = counts.get(ev.routingKey);
    const n = (doc ? doc.value.n : 0) + 1;
    // The host runs each event once in effect: a redelivery changes nothing.
    counts.put(ev.routingKey, { n }, doc ? doc.version : 0);
    ctx.debug(`${ev.routingKey}: ${n}`);
    return [];
  })
  .query("counts", "How many events of each routing key were seen", null, (ctx) => {
    const out = {};
    for (const d of ctx.collection(COUNTS).list({ $limit: 1000 })) out[d.id] = d.value.n;
    return out;
  });

export const eventReactor = reactor.export();
