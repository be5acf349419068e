// The `{{name}}` domain: a Parallel You command handler in JavaScript.
//
// | command | body | answer |
// |---|---|---|
// | `{{name}}.hello` | `{name}` | `{{name}}.greeted {greeting, times}` |
//
// Build with `pyou build` ("parallel-you" is the helper module of the SDK
// it builds with), try with
// `pyou invoke --handlers dist {{name}}.hello '{"name":"Ada"}'`.

import { Router, event } from "parallel-you";

// Checked by the host before the handler runs: a bad body never gets here.
const HELLO = {
  type: "object",
  required: ["name"],
  properties: { name: { type: "string", minLength: 1, maxLength: 100 } },
};

const router = new Router("{{name}}", "0.1.0")
  .command("{{name}}.hello", "Greet someone and count the greetings", HELLO, (ctx, body) => {
    const tallies = ctx.collection("tallies");
    const doc = tallies.get(body.name);
    const times = (doc ? doc.value.times : 0) + 1;
    // Optimistic concurrency: a concurrent greeting makes this a `conflict`.
    tallies.put(body.name, { times }, doc ? doc.version : 0);
    ctx.info(`greeted ${body.name}`);
    return [event("{{name}}.greeted", { greeting: `Hello, ${body.name}!`, times })];
  })
  .emits("{{name}}.greeted");

export const commandHandler = router.export();
