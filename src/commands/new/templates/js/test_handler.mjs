// Runs the built component with `pyou invoke`, as a host would.
//
// Build it first (`pyou build`), then `node --test`. `PYOU` names the
// `pyou` binary (default: the one on PATH).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const DIST = join(dirname(fileURLToPath(import.meta.url)), "dist");
const PYOU = process.env.PYOU ?? "pyou";

/** `pyou invoke` of one command against dist/: exit status and events. */
function invoke(data, key, body) {
  assert.ok(existsSync(join(DIST, "{{name}}.wasm")), "no dist/{{name}}.wasm: run `pyou build` first");
  const out = spawnSync(PYOU, ["invoke", "--handlers", DIST, "--data", data, key, body], {
    encoding: "utf8",
  });
  assert.ifError(out.error);
  const events = out.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  return { code: out.status, events };
}

function withData(fn) {
  const data = mkdtempSync(join(tmpdir(), "{{name}}-test-"));
  try {
    fn(data);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}

test("hello greets and counts", () =>
  withData((data) => {
    let { code, events } = invoke(data, "{{name}}.hello", '{"name":"Ada"}');
    assert.equal(code, 0, JSON.stringify(events));
    assert.equal(events[0].meta.routing_key, "{{name}}.greeted");
    assert.equal(events[0].body.greeting, "Hello, Ada!");
    assert.equal(events[0].body.times, 1);
    // The store persists across processes.
    ({ events } = invoke(data, "{{name}}.hello", '{"name":"Ada"}'));
    assert.equal(events[0].body.times, 2);
  }));

test("an empty name is refused", () =>
  withData((data) => {
    const { code, events } = invoke(data, "{{name}}.hello", '{"name":""}');
    assert.equal(code, 1, "an error event exits 1");
    assert.equal(events[0].meta.routing_key, "{{name}}.error");
    assert.equal(events[0].body.code, "validation");
  }));
