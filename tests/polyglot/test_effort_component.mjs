// The built `effort` component (not its Rust source) through its WIT
// export: transpiled by jco and run in Node with an in-memory store, it
// reports its manifest, records a run from two events, ignores their
// redelivery, and answers and refuses queries as the contract says.
//
// Run after scripts/build-handlers: `node tests/polyglot/test_effort_component.mjs`.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const JS = path.join(ROOT, "sdk/js/node_modules");
const shim = await import(path.join(JS, "@bytecodealliance/preview2-shim/dist/nodejs/index.js"));

const out = mkdtempSync(path.join(tmpdir(), "pyou-effort-"));
process.on("exit", () => rmSync(out, { recursive: true, force: true }));
execFileSync(
  path.join(JS, ".bin/jco"),
  ["transpile", path.join(ROOT, "target/test-handlers/effort.wasm"), "--instantiation", "async", "-o", out],
  { stdio: "ignore" },
);
const { instantiate } = await import(path.join(out, "effort.js"));

// The store's contract: versions checked; the filters effort uses
// (equality, $gte/$lte, $limit).
const OPS = { $gte: (a, b) => a >= b, $lte: (a, b) => a <= b };
const matches = (doc, [k, want]) =>
  want !== null && typeof want === "object"
    ? Object.entries(want).every(([op, v]) => OPS[op](doc[k], v))
    : doc[k] === want;
const mem = new Map();
const docs = (c) =>
  [...mem]
    .filter(([k]) => k.startsWith(`${c}/`))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, d]) => ({ id: k.slice(c.length + 1), version: BigInt(d.v), json: d.json }));
const store = {
  get: (c, id) => docs(c).find((d) => d.id === id),
  list: (c, filter) => {
    const { $limit, ...f } = JSON.parse(filter);
    return docs(c)
      .filter((d) => Object.entries(f).every((kv) => matches(JSON.parse(d.json), kv)))
      .slice(0, $limit ?? Infinity);
  },
  upsert: (c, id, json, expected) => {
    const current = mem.get(`${c}/${id}`)?.v ?? 0;
    if (expected !== undefined && BigInt(current) !== expected) {
      throw { tag: "conflict", val: BigInt(current) };
    }
    mem.set(`${c}/${id}`, { json, v: current + 1 });
    return BigInt(current + 1);
  },
  delete: () => false,
  clear: () => {},
};
const wasi = {
  "wasi:cli/environment": shim.cli.environment,
  "wasi:cli/exit": shim.cli.exit,
  "wasi:cli/stderr": shim.cli.stderr,
  "wasi:cli/stdin": shim.cli.stdin,
  "wasi:cli/stdout": shim.cli.stdout,
  "wasi:cli/terminal-input": shim.cli.terminalInput,
  "wasi:cli/terminal-output": shim.cli.terminalOutput,
  "wasi:cli/terminal-stderr": shim.cli.terminalStderr,
  "wasi:cli/terminal-stdin": shim.cli.terminalStdin,
  "wasi:cli/terminal-stdout": shim.cli.terminalStdout,
  "wasi:io/error": shim.io.error,
  "wasi:io/poll": shim.io.poll,
  "wasi:io/streams": shim.io.streams,
};
const root = await instantiate(async (f) => WebAssembly.compile(await readFile(path.join(out, f))), {
  ...wasi,
  "parallel-you:handler/store": store,
  "parallel-you:handler/log": { log: () => {} },
  "parallel-you:handler/scheduler": { schedule: () => "t", cancel: () => false },
});
const effort = root.eventReactor;

const T0 = 1700000000000;
const event = (key, at, id, state) => ({
  meta: { messageId: id, routingKey: key, correlationId: "c", timestampMs: BigInt(at) },
  body: JSON.stringify({ id: "t1", run: 1, state, saga_id: "s1", sprint_id: "sp", energy: "deep" }),
});
const witError = (f) => {
  try {
    f();
  } catch (e) {
    return e.payload;
  }
  assert.fail("no error");
};

test("the component exports world reactor's manifest", () => {
  assert.equal(Object.keys(root).includes("commandHandler"), false);
  const m = effort.manifest();
  assert.equal(m.domain, "effort");
  assert.ok(m.subscribes.includes("thread.quantum.expired"));
  assert.deepEqual(
    m.queries.map((q) => q.name),
    ["by_thread", "by_saga", "by_sprint", "by_day"],
  );
});

test("a run is recorded once and queried", () => {
  assert.deepEqual(effort.onEvent(event("thread.started", T0, "01A", "running")), []);
  effort.onEvent(event("thread.parked", T0 + 1500000, "01B", "parked"));
  effort.onEvent(event("thread.parked", T0 + 1500000, "01B", "parked"));
  effort.onEvent(event("thread.started", T0, "01A", "running"));
  const saga = JSON.parse(effort.query("by_saga", '{"id":"s1"}'));
  assert.equal(saga.ms, 1500000);
  assert.equal(saga.human, "25m 00s");
  assert.deepEqual(saga.threads.map((t) => t.id), ["t1"]);
  const days = JSON.parse(effort.query("by_day", '{"from":"2023-11-14","to":"2023-11-14"}'));
  assert.deepEqual(days.by_energy, { deep: 1500000 });
});

test("query errors are the contract's codes", () => {
  assert.equal(witError(() => effort.query("by_saga", '{"id":"nope"}')).code, "not_found");
  assert.equal(witError(() => effort.query("by_day", '{"to":"soon"}')).code, "validation");
  assert.equal(witError(() => effort.query("by_week", "{}")).code, "not_found");
  assert.equal(witError(() => effort.onEvent({ ...event("thread.started", T0, "x", "running"), body: "[" })).code, "validation");
});
