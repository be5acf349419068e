// `jsfeed`, a testing reactor written in JavaScript: an activity feed of
// the thread domain, proving the `reactor` world in a second language.
//
// | listens to | keeps | sends |
// |---|---|---|
// | `thread.#` | `{key, thread_id, state, at_ms}` in `feed`, id the event's message id | `notes.capture` for `thread.completed` |
//
// | query | params | answer |
// |---|---|---|
// | `latest` | `{limit?}` (1-100, default 20) | `{items: [...], count}` oldest first |
//
// Build: `scripts/build-polyglot` (jco componentize, world `reactor`).

import { HandlerError, Reactor, command } from "../../../sdk/js/parallel-you.js";

const FEED = "feed";

const reactor = new Reactor("jsfeed", "0.1.0")
  .sends("notes.capture")
  .index(FEED, "thread_id")
  .on("thread.completed", (ctx, ev) => {
    record(ctx, ev);
    const id = ev.body.id;
    return [command("notes.capture", { thread_id: id, text: `${id} completed`, tags: ["done"] })];
  })
  .on("thread.#", (ctx, ev) => {
    record(ctx, ev);
    return [];
  })
  .query(
    "latest",
    "The feed's latest items",
    {
      type: "object",
      additionalProperties: false,
      properties: { limit: { type: "integer", minimum: 1, maximum: 100 } },
    },
    (ctx, params) => {
      const limit = Number(params.limit ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw HandlerError.validation("`limit` must be an integer from 1 to 100");
      }
      const items = ctx.collection(FEED).list({ $limit: limit }).map((d) => d.value);
      return { items, count: items.length };
    },
  );

// The message id makes a redelivered event the same item.
function record(ctx, ev) {
  const body = ev.body && typeof ev.body === "object" ? ev.body : {};
  ctx.collection(FEED).put(ev.messageId, {
    key: ev.routingKey,
    thread_id: typeof body.id === "string" ? body.id : null,
    state: typeof body.state === "string" ? body.state : null,
    at_ms: ev.timestampMs,
  });
}

export const eventReactor = reactor.export();
