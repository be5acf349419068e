// Runs the built reactor with `pyou invoke --event` and `pyou query`.
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

/** `pyou ARGS… --handlers dist --data DATA`, which must succeed: its stdout. */
function pyou(data, ...args) {
  assert.ok(existsSync(join(DIST, "{{name}}.wasm")), "no dist/{{name}}.wasm: run `pyou build` first");
  const out = spawnSync(PYOU, [...args, "--handlers", DIST, "--data", data], { encoding: "utf8" });
  assert.ifError(out.error);
  assert.equal(out.status, 0, `pyou ${args.join(" ")}: ${out.stderr}`);
  return out.stdout;
}

test("counts the events it hears", () => {
  const data = mkdtempSync(join(tmpdir(), "{{name}}-test-"));
  try {
    for (let i = 0; i < 2; i++) {
      pyou(data, "invoke", "--event", "counter.incremented", '{"name":"tea","value":1}');
    }
    const counts = JSON.parse(pyou(data, "query", "{{name}}", "counts"));
    assert.equal(counts["counter.incremented"], 2);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
