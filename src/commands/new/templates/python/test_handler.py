"""Runs the built component with `pyou invoke`, as a host would.

Build it first (`pyou build`), then `python3 test_app.py`. `PYOU` names the
`pyou` binary (default: the one on PATH).
"""

import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DIST = os.path.join(HERE, "dist")
PYOU = os.environ.get("PYOU", "pyou")


def invoke(data, key, body):
    """`pyou invoke` of one command against dist/: exit status and events."""
    if not os.path.isfile(os.path.join(DIST, "{{name}}.wasm")):
        raise AssertionError("no dist/{{name}}.wasm: run `pyou build` first")
    out = subprocess.run(
        [PYOU, "invoke", "--handlers", DIST, "--data", data, key, body],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines()]


class HelloTest(unittest.TestCase):
    def test_hello_greets_and_counts(self):
        with tempfile.TemporaryDirectory() as data:
            code, events = invoke(data, "{{name}}.hello", '{"name":"Ada"}')
            self.assertEqual(code, 0, events)
            self.assertEqual(events[0]["meta"]["routing_key"], "{{name}}.greeted")
            self.assertEqual(events[0]["body"]["greeting"], "Hello, Ada!")
            self.assertEqual(events[0]["body"]["times"], 1)
            # The store persists across processes.
            _, events = invoke(data, "{{name}}.hello", '{"name":"Ada"}')
            self.assertEqual(events[0]["body"]["times"], 2)

    def test_an_empty_name_is_refused(self):
        with tempfile.TemporaryDirectory() as data:
            code, events = invoke(data, "{{name}}.hello", '{"name":""}')
            self.assertEqual(code, 1, "an error event exits 1")
            self.assertEqual(events[0]["meta"]["routing_key"], "{{name}}.error")
            self.assertEqual(events[0]["body"]["code"], "validation")


if __name__ == "__main__":
    unittest.main()
