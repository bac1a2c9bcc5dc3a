"""Several runs of one console script in one fresh Python process.

For runs that fail on their flags, model or data before any real work: a process of its
own would mostly be a Python+TensorFlow start (~5 s). Each run calls the script's `run()`
as the console script does, with its flags reset (absl re-parses them on a rerun); its exit
code, stdout and stderr are kept, and an exception escaping `run()` is printed as the
interpreter prints it (exit code 1). Results were checked identical to one process per run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Mapping, Sequence

_RUNS = r"""
import contextlib, importlib, io, json, sys, traceback
from absl import flags
run = importlib.import_module(sys.argv[1]).run
results = {}
for name, args in json.loads(sys.argv[2]).items():
    sys.argv, out, err = ["-c", *args], io.StringIO(), io.StringIO()
    flags.FLAGS.unparse_flags()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
            if isinstance(code, str):
                print(code, file=sys.stderr)
            code = code if isinstance(code, int) else int(code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
    results[name] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


def cli_runs(module: str, runs: Mapping[str, Sequence], timeout: float = 900,
             env: Mapping[str, str] | None = None) -> dict[str, subprocess.CompletedProcess]:
    """`{name: args}` of the console script in `module` (its `run()`), run one after another
    in one process (environment `env`, default this one's): `{name: that run's
    CompletedProcess}`."""
    runs = {name: [str(arg) for arg in args] for name, args in runs.items()}
    done = subprocess.run([sys.executable, "-c", _RUNS, module, json.dumps(runs)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    return {name: subprocess.CompletedProcess(runs[name], *results[name]) for name in runs}
