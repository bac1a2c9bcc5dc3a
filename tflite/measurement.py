"""Latency and peak memory of LiteRT models, measured as an app would see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Sequence

import numpy as np

from keras_squeezetime.tflite.interpreter import LiteRTModel, check_tflite_file
from keras_squeezetime.tflite.signature import INPUT_NAME, SIGNATURE_KEY


def measure_latency(
    models: Sequence[LiteRTModel], clip: np.ndarray, runs: int = 30, warmup: int = 5
) -> list[dict[str, float]]:
    """Median and p90 milliseconds per model, timed round-robin after `warmup` runs each.

    Round-robin: a change of load on a shared machine hits every model alike, so the
    ratios between them stay fair.
    """
    for model in models:
        for _ in range(warmup):
            model.time_invoke(clip)
    times = [[] for _ in models]
    for _ in range(runs):
        for i, model in enumerate(models):
            times[i].append(model.time_invoke(clip) * 1e3)
    return [
        {"median": float(np.median(t)), "p90": float(np.percentile(t, 90)), "runs": runs}
        for t in times
    ]


_PROBE_TIMEOUT_S = 600  # three runs take seconds; a hung runtime, forever

_MEMORY_PROBE = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
before = status_kb("VmRSS")
interpreter = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[2]))
runner = interpreter.get_signature_runner(sys.argv[3])
detail = runner.get_input_details()[sys.argv[4]]
x = np.zeros(detail["shape"], dtype=detail["dtype"])
for _ in range(3):
    runner(**{sys.argv[4]: x})
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
peak = status_kb("VmHWM")
print(json.dumps({"before_kb": before, "peak_kb": peak}))
"""


def peak_memory_bytes(path: str | os.PathLike, threads: int = 2) -> int:
    """Peak resident memory the model adds to a bare process (load + 3 runs), in bytes.

    Measured in a fresh process that imports only the LiteRT runtime, so TensorFlow and
    the harness do not count; the baseline is that process's memory before loading.
    """
    check_tflite_file(path)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, os.fspath(path), str(threads), SIGNATURE_KEY,
             INPUT_NAME],
            capture_output=True, text=True, check=False, timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Memory probe of {path} did not finish in {_PROBE_TIMEOUT_S} s."
                           ) from None
    if result.returncode != 0:
        raise RuntimeError(f"Memory probe of {path} failed: {result.stderr.strip()[-500:]}")
    values = json.loads(result.stdout.strip().splitlines()[-1])
    return max(values["peak_kb"] - values["before_kb"], 0) * 1024
