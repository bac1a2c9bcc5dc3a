"""CPU latency of the full-size SqueezeTime (16x224x224, 400 classes), against the matmul roof.

Measures, in one run on this machine:
  * the fp32 matmul roof: GFLOP/s of a large `tf.matmul` (4096^3), close to the FMA peak;
  * the Keras model at batch 1 (median and p90 latency) and batch 8 (clips/s), as a
    graph (`tf.function`), with its BNs folded (`keras_squeezetime.fold_batch_norm`), and
    folded under XLA (`jit_compile=True`);
  * all models timed round-robin (one run of each in turn), so that load changes on a
    shared machine affect every model alike and the ratios stay fair;
  * optionally the official PyTorch model at the same sizes and thread count, loaded
    from a copy of the official source file (`--official_source`, e.g. a clone of
    xinghaochen/SqueezeTime: mmaction/models/backbones/SqueezeTime.py). PyTorch is
    not a dependency of this project: install it beside it for this comparison only.

Efficiency = 2 x 5.506e9 / (latency x roof): the fraction of the roof the model's
multiply-adds (fvcore count, 5.506 G) would need at that latency.

Usage:
  python benchmarks/latency.py [--threads 2] [--runs 30]
      [--official_source path/to/SqueezeTime.py]
"""

from __future__ import annotations

import importlib.util
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


def measure_interleaved(named_makers: dict, runs: int, warmup: int, roof: float) -> list[dict]:
    """Times every model round-robin, so a change in machine load hits all of them alike."""
    batch1 = {name: make(1) for name, make in named_makers.items()}
    batch8 = {name: make(8) for name, make in named_makers.items()}
    for fn in [*batch1.values(), *batch8.values()]:
        for _ in range(warmup):
            fn()
    times1 = {name: [] for name in named_makers}
    times8 = {name: [] for name in named_makers}
    for run in range(runs):
        for name in named_makers:
            times1[name].append(_time(batch1[name], 1, 0)[0])
            if run % 3 == 0:
                times8[name].append(_time(batch8[name], 1, 0)[0])
    rows = []
    for name in named_makers:
        median = float(np.median(times1[name]))
        rows.append({
            "name": name,
            "median_ms": median * 1e3,
            "p90_ms": float(np.percentile(times1[name], 90)) * 1e3,
            "clips_per_s_b8": 8 / float(np.median(times8[name])),
            "efficiency": 2 * MULTIPLY_ADDS / (median * roof * 1e9),
        })
    return rows


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    roof = matmul_roof(tf)
    makers = {
        "Keras (TF graph)": keras_runners(tf, False),
        "Keras, BN folded": keras_runners(tf, False, fold=True),
    }
    if FLAGS.xla:
        makers["Keras, BN folded, XLA"] = keras_runners(tf, True, fold=True)
    if FLAGS.official_source:
        makers["official PyTorch"] = torch_runners(FLAGS.official_source, FLAGS.threads)
    rows = measure_interleaved(makers, FLAGS.runs, FLAGS.warmup, roof)
    roof_after = matmul_roof(tf)
    print(f"\nmatmul roof before/after: {roof:.0f}/{roof_after:.0f} GFLOP/s")
    reference = rows[-1] if FLAGS.official_source else None
    print(f"({FLAGS.threads} threads; efficiency uses the roof measured first)\n")
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
