// The `stats` domain, written in JavaScript: time spent per energy band.
//
// | command | body | answer |
// |---|---|---|
// | `stats.record` | `{thread_id, band: deep\|moderate\|light, minutes}` | `stats.recorded {id, thread_id, band, minutes, totals}` |
// | `stats.summary` | `{thread_id?}` | `stats.summarised {thread_id?, bands: {deep, moderate, light}, total_minutes, sessions}` |
//
// Every recorded session is kept in the `sessions` collection under the
// recording command's message id (a ULID, so a redelivered command cannot
// count twice), and added to two running totals in the `totals` collection:
// `all` and `thread:<thread_id>`. Totals are updated with optimistic
// concurrency: a concurrent writer makes the update retry on the newer
// version.
//
// Build: `scripts/build-polyglot` (jco componentize); see docs/languages.md.

import { HandlerError, Router, event } from "../../sdk/js/parallel-you.js";

const BANDS = ["deep", "moderate", "light"];
const ATTEMPTS = 5;
const THREAD_ID = { type: "string", minLength: 1, maxLength: 128 };

function emptyTotals() {
  return { bands: { deep: 0, moderate: 0, light: 0 }, total_minutes: 0, sessions: 0 };
}

/** Adds `minutes` in `band` to the totals document `id`; returns them. */
function addTo(totals, id, band, minutes) {
  for (let attempt = 1; ; attempt++) {
    const doc = totals.get(id);
    const value = doc ? doc.value : emptyTotals();
    value.bands[band] += minutes;
    value.total_minutes += minutes;
    value.sessions += 1;
    try {
      totals.put(id, value, doc ? doc.version : 0);
      return value;
    } catch (e) {
      if (!(e instanceof HandlerError && e.code === "conflict") || attempt >= ATTEMPTS) throw e;
    }
  }
}

const router = new Router("stats", "0.1.0")
  .command(
    "stats.record",
    "Record minutes spent on a thread in an energy band",
    {
      type: "object",
      additionalProperties: false,
      required: ["thread_id", "band", "minutes"],
      properties: {
        thread_id: THREAD_ID,
        band: { type: "string", enum: BANDS },
        minutes: { type: "integer", minimum: 1, maximum: 24 * 60 },
      },
    },
    (ctx, body) => {
      const { thread_id, band, minutes } = body;
      const id = ctx.messageId;
      // `0`: create only, so a redelivered command is refused, not counted twice.
      ctx.collection("sessions").put(
        id,
        { thread_id, band, minutes, recorded_ms: ctx.timestampMs },
        0,
      );
      const totals = ctx.collection("totals");
      addTo(totals, `thread:${thread_id}`, band, minutes);
      const all = addTo(totals, "all", band, minutes);
      ctx.info(`${minutes} min ${band} on ${thread_id}`);
      return [event("stats.recorded", { id, thread_id, band, minutes, totals: all })];
    },
  )
  .command(
    "stats.summary",
    "Minutes per energy band, overall or for one thread",
    {
      type: "object",
      additionalProperties: false,
      properties: { thread_id: THREAD_ID },
    },
    (ctx, body) => {
      const id = body.thread_id === undefined ? "all" : `thread:${body.thread_id}`;
      const doc = ctx.collection("totals").get(id);
      const summary = doc ? doc.value : emptyTotals();
      if (body.thread_id !== undefined) summary.thread_id = body.thread_id;
      return [event("stats.summarised", summary)];
    },
  )
  .emits("stats.recorded", "stats.summarised");

export const commandHandler = router.export();
