"""Runs the built reactor with `pyou invoke --event` and `pyou query`.

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


def pyou(data, *args):
    """`pyou ARGS… --handlers dist --data DATA`, which must succeed: its stdout."""
    if not os.path.isfile(os.path.join(DIST, "{{name}}.wasm")):
        raise AssertionError("no dist/{{name}}.wasm: run `pyou build` first")
    out = subprocess.run(
        [PYOU, *args, "--handlers", DIST, "--data", data],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"pyou {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out.stdout


class CountsTest(unittest.TestCase):
    def test_counts_the_events_it_hears(self):
        with tempfile.TemporaryDirectory() as data:
            for _ in range(2):
                pyou(data, "invoke", "--event", "counter.incremented", '{"name":"tea","value":1}')
            counts = json.loads(pyou(data, "query", "{{name}}", "counts"))
            self.assertEqual(counts["counter.incremented"], 2)


if __name__ == "__main__":
    unittest.main()
