"""CPU latency of the full-size SqueezeTime (16x224x224, 400 classes), against the matmul roof.

Measures, in one run on this machine:
  * the fp32 matmul roof: GFLOP/s of a large `tf.matmul` (4096^3), close to the FMA peak;
  * the Keras model at batch 1 (median and p90 latency) and batch 8 (clips/s), as a
    graph (`tf.function`), with its BNs folded (`keras_squeezetime.fold_batch_norm`), and
    folded under XLA (`jit_compile=True`);
  * each model timed alone in its own process, in turn, for several cycles (`--cycles`):
    timing runtimes round-robin in one process let one's worker threads slow the next
    one's runs by 10-20 % (BENCHMARKS.md, LiteRT); cycling spreads changes of machine load
    over all models, so ratios from one run stay fair;
  * optionally the official PyTorch model at the same sizes and thread count, loaded
    from a copy of the official source file (`--official_source`, e.g. a clone of
    xinghaochen/SqueezeTime: mmaction/models/backbones/SqueezeTime.py). PyTorch is
    not a dependency of this project: install it beside it for this comparison only.

Efficiency = 2 x 5.506e9 / (latency x roof): the fraction of the roof the model's
multiply-adds (fvcore count, 5.506 G) would need at that latency.

Usage:
  python benchmarks/latency.py [--threads 2] [--runs 30] [--cycles 3]
      [--official_source path/to/SqueezeTime.py]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import types

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("threads", 2, "Intra-op threads for TensorFlow and PyTorch.")
flags.DEFINE_integer("runs", 30, "Timed runs at batch 1 (batch 8 uses a third).")
flags.DEFINE_integer("warmup", 5, "Untimed runs first.")
flags.DEFINE_string("official_source", None, "Path to the official SqueezeTime.py to time PyTorch.")
flags.DEFINE_bool("xla", True, "Also time the Keras model under XLA.")
flags.DEFINE_integer("cycles", 3, "Rounds of timing each model alone in its own process.")
flags.DEFINE_string("time_model", None, "Internal: time one model in this process and print "
                    "its times.")
flags.DEFINE_bool("roof_only", False, "Internal: print the matmul roof and exit.")

MULTIPLY_ADDS = 5.506e9
INPUT = (16, 224, 224, 3)


def _time(fn, runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def matmul_roof(tf, runs: int = 8) -> float:
    """GFLOP/s of a 4096^3 fp32 matmul."""
    a = tf.random.normal((4096, 4096))
    matmul = tf.function(lambda a: tf.matmul(a, a))
    times = _time(lambda: matmul(a).numpy(), runs, 2)
    return 2 * 4096**3 / np.median(times) / 1e9


def keras_runners(tf, jit_compile: bool, fold: bool = False):
    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.folding import fold_batch_norm

    model = SqueezeTime(weights=None)
    if fold:
        model = fold_batch_norm(model)
    forward = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
    return lambda batch: (lambda x=tf.random.uniform((batch, *INPUT), 0, 255): forward(x).numpy())


def torch_runners(path: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    # The official file imports mmaction's registry only to register the class.
    registry = types.ModuleType("mmaction.registry")
    registry.MODELS = types.SimpleNamespace(register_module=lambda *a, **k: (lambda cls: cls))
    sys.modules.setdefault("mmaction", types.ModuleType("mmaction"))
    sys.modules["mmaction.registry"] = registry
    spec = importlib.util.spec_from_file_location("official_squeezetime", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    backbone = module.generate_model(
        50, widen_factor=1.0, dropout=0.5, n_input_channels=48, n_classes=400,
        pos_dim=[56, 28, 14, 7],
    )
    head = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.5),
        torch.nn.Linear(2048, 400), torch.nn.Softmax(dim=1),
    )
    model = torch.nn.Sequential(backbone, head).eval()

    def runner(batch):
        x = torch.rand(batch, 3, 16, 224, 224) * 255

        def run():
            with torch.inference_mode():
                model(x)

        return run

    return runner


KERAS, KERAS_FOLDED, KERAS_XLA, TORCH = (
    "Keras (TF graph)", "Keras, BN folded", "Keras, BN folded, XLA", "official PyTorch")


def _makers(name: str) -> dict:
    """`{batch: run}` of one model, built in this process."""
    if name == TORCH:
        make = torch_runners(FLAGS.official_source, FLAGS.threads)
    else:
        import tensorflow as tf

        _tensorflow_threads(tf)
        make = keras_runners(tf, name == KERAS_XLA, fold=name != KERAS)
    return {1: make(1), 8: make(8)}


def _tensorflow_threads(tf) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def time_model(name: str) -> None:
    """Worker: times one model at batch 1 and 8 and prints `TIMES {"1": [s], "8": [s]}`."""
    runs = _makers(name)
    times = {batch: _time(run, FLAGS.runs if batch == 1 else max(1, FLAGS.runs // 3),
                          FLAGS.warmup).tolist() for batch, run in runs.items()}
    print("TIMES " + json.dumps(times))


def _in_subprocess(*args: str) -> str:
    result = subprocess.run([sys.executable, __file__, *args, f"--threads={FLAGS.threads}",
                             f"--runs={FLAGS.runs}", f"--warmup={FLAGS.warmup}",
                             f"--official_source={FLAGS.official_source or ''}"],
                            check=True, capture_output=True, text=True)
    return result.stdout


def measure(names: list[str], roof: float) -> list[dict]:
    """Each model timed alone in its own process, `--cycles` rounds in turn."""
    times1 = {name: [] for name in names}
    times8 = {name: [] for name in names}
    for cycle in range(FLAGS.cycles):
        for name in names:
            out = _in_subprocess(f"--time_model={name}")
            values = json.loads(
                next(line for line in out.splitlines() if line.startswith("TIMES "))[6:])
            times1[name] += values["1"]
            times8[name] += values["8"]
            print(f"cycle {cycle + 1}/{FLAGS.cycles}: timed {name}", flush=True)
    rows = []
    for name in names:
        median = float(np.median(times1[name]))
        rows.append({
            "name": name,
            "median_ms": median * 1e3,
            "p90_ms": float(np.percentile(times1[name], 90)) * 1e3,
            "clips_per_s_b8": 8 / float(np.median(times8[name])),
            "efficiency": 2 * MULTIPLY_ADDS / (median * roof * 1e9),
        })
    return rows


def _roof() -> float:
    out = _in_subprocess("--roof_only")
    return float(next(line for line in out.splitlines() if line.startswith("ROOF "))[5:])


def main(argv):
    del argv
    if FLAGS.roof_only:
        import tensorflow as tf

        _tensorflow_threads(tf)
        print(f"ROOF {matmul_roof(tf)}")
        return
    if FLAGS.time_model:
        time_model(FLAGS.time_model)
        return
    names = [KERAS, KERAS_FOLDED] + ([KERAS_XLA] if FLAGS.xla else [])
    if FLAGS.official_source:
        names.append(TORCH)
    roof = _roof()
    rows = measure(names, roof)
    roof_after = _roof()
    print(f"\nmatmul roof before/after: {roof:.0f}/{roof_after:.0f} GFLOP/s")
    reference = rows[-1] if FLAGS.official_source else None
    print(f"({FLAGS.threads} threads; each model alone in its own process, {FLAGS.cycles} "
          f"cycles x {FLAGS.runs} runs at batch 1; efficiency uses the roof measured first)\n")
    print("| model | batch 1 median ms | batch 1 p90 ms | batch 8 clips/s | efficiency |"
          + (" latency vs PyTorch |" if reference else ""))
    print("|---|---|---|---|---|" + ("---|" if reference else ""))
    for row in rows:
        line = (f"| {row['name']} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | "
                f"{row['clips_per_s_b8']:.1f} | {row['efficiency']:.2f} |")
        if reference:
            line += f" {row['median_ms'] / reference['median_ms']:.2f}x |"
        print(line)


if __name__ == "__main__":
    app.run(main)
