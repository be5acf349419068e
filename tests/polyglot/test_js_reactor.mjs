// Native tests of the JavaScript helper's reactor side and of the
// `jsfeed` testing reactor, without a host: the WIT imports are faked
// (wit-stubs.mjs).
//
// Run: `node tests/polyglot/test_js_reactor.mjs` (from anywhere; Node 20+).
import { register } from "node:module";
import assert from "node:assert/strict";
import test from "node:test";

register("./wit-stubs.mjs", import.meta.url);

const mem = new Map();
globalThis.__pyou = {
  get: (c, id) => {
    const d = mem.get(`${c}/${id}`);
    return d ? { id, version: BigInt(d.version), json: d.json } : undefined;
  },
  list: (c, filter) => {
    const f = JSON.parse(filter);
    return [...mem.entries()]
      .filter(([k]) => k.startsWith(`${c}/`))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .slice(0, f.$limit ?? Infinity)
      .map(([k, d]) => ({ id: k.slice(c.length + 1), version: BigInt(d.version), json: d.json }));
  },
  upsert: (c, id, json) => {
    const version = (mem.get(`${c}/${id}`)?.version ?? 0) + 1;
    mem.set(`${c}/${id}`, { json, version });
    return BigInt(version);
  },
  log: () => {},
};

const { Reactor, command, topicMatches, HandlerError } = await import("../../sdk/js/parallel-you.js");
const { eventReactor: feed } = await import("../../handlers/testing/jsfeed/app.js");

const meta = (routingKey, messageId = "01A", timestampMs = 1700000000000n) => ({
  messageId,
  routingKey,
  replyChannel: "session.s1",
  correlationId: "c1",
  causationId: undefined,
  sessionId: "s1",
  timestampMs,
});
const ev = (key, body, ...rest) => ({ meta: meta(key, ...rest), body: JSON.stringify(body) });
const witError = (f) => {
  try {
    f();
  } catch (e) {
    return e.payload;
  }
  assert.fail("no error");
};

test("topic patterns", () => {
  const cases = [
    ["#", "a.b.c", true],
    ["a.#", "a", true],
    ["a.*", "a.b", true],
    ["a.*", "a.b.c", false],
    ["#.c", "c", true],
    ["#.b.#", "a.b.c", true],
    ["a.#.c", "a.c", true],
    ["a.b", "a.bc", false],
    ["thread.*", "thread.quantum.expired", false],
  ];
  for (const [p, k, want] of cases) assert.equal(topicMatches(p, k), want, `${p} vs ${k}`);
});

test("first registered wins; errors are WIT errors", () => {
  const r = new Reactor("demo", "1.0.0")
    .on("thread.quantum.expired", (_ctx, e) => [command("demo.ran", { fn: "exact", at: e.timestampMs })])
    .on("thread.#", (_ctx, e) => [command("demo.ran", { fn: "broad", key: e.routingKey })])
    .onTimer("demo.tick", () => undefined)
    .query("echo", "Echo", { type: "object" }, (_ctx, p) => {
      if (p.missing) throw HandlerError.notFound("nothing");
      return p;
    })
    .index("things", "a", "b")
    .sends("demo.ran");
  const x = r.export();
  const m = x.manifest();
  assert.deepEqual(m.subscribes, ["thread.quantum.expired", "thread.#"]);
  assert.deepEqual(m.indexes, [{ collection: "things", fields: ["a", "b"] }]);
  assert.equal(m.queries[0].paramsSchema, '{"type":"object"}');
  assert.deepEqual(JSON.parse(x.onEvent(ev("thread.quantum.expired", {}))[0].body), {
    fn: "exact",
    at: 1700000000000,
  });
  assert.equal(JSON.parse(x.onEvent(ev("thread.started", {}))[0].body).fn, "broad");
  assert.deepEqual(x.onEvent(ev("demo.tick", {})), []);
  assert.equal(witError(() => x.onEvent(ev("notes.x", {}))).code, "unknown_routing_key");
  assert.equal(witError(() => x.onEvent({ meta: meta("thread.a"), body: "{no" })).code, "validation");
  assert.equal(witError(() => x.query("nope", "{}")).code, "not_found");
  assert.equal(witError(() => x.query("echo", "[1]")).code, "validation");
  assert.equal(witError(() => x.query("echo", '{"missing":1}')).message, "nothing");
  assert.equal(x.query("echo", ""), "{}");
  const boom = new Reactor("demo", "1").on("#", () => {
    throw new TypeError("x");
  });
  assert.equal(witError(() => boom.export().onEvent(ev("a", {}))).code, "handler_error");
});

test("jsfeed records events once and answers latest", () => {
  mem.clear();
  const out = feed.onEvent(ev("thread.completed", { id: "t1", state: "done" }, "01A"));
  assert.equal(out[0].routingKey, "notes.capture");
  assert.equal(JSON.parse(out[0].body).thread_id, "t1");
  feed.onEvent(ev("thread.completed", { id: "t1", state: "done" }, "01A"));
  assert.deepEqual(feed.onEvent(ev("thread.started", { id: "t2", state: "running" }, "01B")), []);
  const latest = JSON.parse(feed.query("latest", "{}"));
  assert.equal(latest.count, 2);
  assert.deepEqual(
    latest.items.map((i) => i.key),
    ["thread.completed", "thread.started"],
  );
  assert.equal(JSON.parse(feed.query("latest", '{"limit": 1}')).count, 1);
  assert.equal(witError(() => feed.query("latest", '{"limit": 0}')).code, "validation");
});
