"""Running an exported model in the LiteRT interpreter: outputs, latency, peak memory, ops.

The interpreter is `ai_edge_litert.interpreter.Interpreter` with its default op resolver,
which applies the XNNPACK delegate (float and int8 kernels) as on a phone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Sequence

import numpy as np

from keras_squeezetime.tflite import compat
from keras_squeezetime.tflite.export import INPUT_NAME, LOGITS_NAME, OUTPUT_NAME, SIGNATURE_KEY
from keras_squeezetime.tflite.tensor_quantization import dequantize_output, quantize_input

_FLATBUFFER_ID = b"TFL3"


class NotTFLiteError(ValueError):
    """The file is not a LiteRT (TFLite) flatbuffer."""


def check_tflite_file(path: str | os.PathLike) -> None:
    """Raises unless `path` is an existing LiteRT flatbuffer (file identifier `TFL3`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != _FLATBUFFER_ID:
        raise NotTFLiteError(
            f"{path} is not a LiteRT/TFLite model (no 'TFL3' flatbuffer identifier); "
            "export one with squeezetime-export."
        )


class LiteRTModel:
    """An exported SqueezeTime model behind its `serving_default` signature.

    Args:
      path: the `.tflite` file.
      threads: interpreter threads (XNNPACK uses them too).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        check_tflite_file(path)
        self.path = os.fspath(path)
        self.threads = int(threads)
        self.interpreter = Interpreter(model_path=self.path, num_threads=self.threads)
        self.interpreter.allocate_tensors()  # applies XNNPACK, so `delegation()` can see it
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise ValueError(
                f"{self.path} has no '{SIGNATURE_KEY}' signature (has {sorted(signatures)}); "
                "export it with squeezetime-export."
            )
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        inputs = self.runner.get_input_details()
        if INPUT_NAME not in inputs:
            raise ValueError(
                f"{self.path}: signature input '{INPUT_NAME}' missing; has {sorted(inputs)}."
            )
        self.input_detail = inputs[INPUT_NAME]
        self.output_details = self.runner.get_output_details()
        self._timed: tuple = (None, None)  # (clip, its converted input) for time_invoke

    @property
    def input_shape(self) -> tuple[int, ...]:
        """`(1, T, S, S, 3)`."""
        return tuple(int(d) for d in self.input_detail["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input_detail["dtype"])

    def check_clip_shape(self, shape: Sequence[int]) -> None:
        """Raises naming both shapes when a clip `(T, S, S, 3)` does not fit the model."""
        if tuple(shape) != self.input_shape[1:]:
            raise ValueError(
                f"Clips of shape {tuple(shape)} do not match the input {self.input_shape[1:]} of "
                f"{self.path} (frames, height, width, channels); sample clips at its size."
            )

    def run(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        """Float outputs (`probabilities`, `logits` when exported) of one pixel clip `(T, S, S, 3)`."""
        self.check_clip_shape(clip.shape)
        outputs = self.runner(**{INPUT_NAME: quantize_input(clip[None], self.input_detail)})
        return {
            name: dequantize_output(value, self.output_details[name])[0]
            for name, value in outputs.items()
        }

    def scores(self, clips: np.ndarray) -> np.ndarray:
        """Logits `(N, classes)` of clips, or log-probabilities when no logits were exported."""
        rows = []
        for clip in clips:
            out = self.run(clip)
            rows.append(out[LOGITS_NAME] if LOGITS_NAME in out else np.log(out[OUTPUT_NAME] + 1e-12))
        return np.stack(rows)

    def time_invoke(self, clip: np.ndarray) -> float:
        """Seconds of one invocation (input copy included, as an app pays it).

        The clip is converted to the input dtype once and reused while the same array is
        passed, as an app reuses its input buffer: a freshly allocated input every call
        made uint8 runs measure up to 2 ms slower than float ones on a 16x224x224 clip.
        """
        if self._timed[0] is not clip:
            self._timed = (clip, quantize_input(clip[None], self.input_detail))
        x = self._timed[1]
        start = time.perf_counter()
        self.runner(**{INPUT_NAME: x})
        return time.perf_counter() - start

    def delegation(self) -> dict[str, object]:
        """How XNNPACK took the graph: `{"partitions": n, "ops_outside": {op: count}}`.

        Ops outside the delegate run in LiteRT's own kernels and split the graph into
        partitions, each boundary a sync point; XNNPACK refuses, for example, an int8 ADD
        whose input/output scales are more than 2**10 apart. The interpreter does not list
        its execution plan, so the ops outside are found from the delegate nodes' inputs:
        a delegate input (or model output) made by a node and not by a delegate comes from
        an undelegated node, and so do that node's own such inputs.
        """
        ops = compat.ops_details(self.interpreter)
        delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
        producer = {t: op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
        delegated_outputs = {t for op in delegates for t in op["outputs"]}
        outputs = [d["index"] for d in self.interpreter.get_output_details()]
        pending = [t for op in delegates for t in op["inputs"]] + outputs
        outside, seen = {}, set()
        while pending:
            tensor = pending.pop()
            if tensor in seen or tensor in delegated_outputs or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            outside[node["index"]] = node["op_name"]
            pending.extend(node["inputs"])
        counts: dict[str, int] = {}
        for name in outside.values():
            counts[name] = counts.get(name, 0) + 1
        return {"partitions": len(delegates), "ops_outside": dict(sorted(counts.items()))}

    def op_counts(self) -> dict[str, int]:
        """`{op name: count}` of the model's execution plan."""
        counts: dict[str, int] = {}
        for op in compat.ops_details(self.interpreter):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        return dict(sorted(counts.items()))


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
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, os.fspath(path), str(threads), SIGNATURE_KEY,
         INPUT_NAME],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Memory probe of {path} failed: {result.stderr.strip()[-500:]}")
    values = json.loads(result.stdout.strip().splitlines()[-1])
    return max(values["peak_kb"] - values["before_kb"], 0) * 1024
