"""Batch-1 latency of the full-size SqueezeTime (16x224x224, 400 classes) as LiteRT variants,
against the Keras model and the official PyTorch model, all timed round-robin in ONE run.

Each variant is exported in its own process (the TF 2.20/2.21 converter leaks memory per
call): float32, dynamic-range, full int8 (float input) and full int8 (uint8 input), all from
the BN-folded graph with seeded random weights (weights do not change the latency; int8 is
calibrated on noise clips, which sets ranges but not speed). Ratios are the result; absolute
milliseconds move with the machine's load.

Usage:
  python benchmarks/tflite_latency.py --threads 2 --runs 30 --workdir /tmp/tflite_bench \
      [--official_source /opt/official/SqueezeTime.py]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# benchmarks/latency.py: the Keras and official PyTorch runners, and the flags --threads,
# --runs, --warmup and --official_source, which this script shares.
import latency  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/squeezetime_tflite_bench", "Where the variants are written.")
flags.DEFINE_string("convert_one", None, "Internal: export one variant 'quantization:input_type'.")
flags.DEFINE_integer("calibration_clips", 8, "Noise clips for int8 calibration.")

INPUT = (16, 224, 224, 3)
VARIANTS = ("float32:float32", "dynamic:float32", "int8:float32", "int8:uint8")


def _model():
    import keras

    from keras_squeezetime import SqueezeTime, fold_batch_norm

    keras.utils.set_random_seed(0)
    model = SqueezeTime(weights=None)
    _estimate_batch_norm_statistics(model)
    return fold_batch_norm(model)


def _estimate_batch_norm_statistics(model, clips: int = 2) -> None:
    """Sets every BN's moving statistics to those of one noise batch.

    A freshly initialised model has moving mean 0 / variance 1, so nothing normalises
    and activations grow ~100x through the 16 blocks. Int8 ranges then end up far
    apart and XNNPACK refuses some int8 ADDs (input/output scale ratio < 2**-10),
    which splits the graph and times a model no trained network resembles.
    """
    import keras

    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    batch = np.random.default_rng(2).uniform(0, 255, (clips, *INPUT)).astype(np.float32)
    model(batch, training=True)
    for layer in norms:
        layer.momentum = 0.9


def _variant_path(variant: str) -> str:
    return os.path.join(FLAGS.workdir, variant.replace(":", "_") + ".tflite")


def convert_one(variant: str) -> None:
    from keras_squeezetime.tflite.convert import export_tflite

    quantization, input_type = variant.split(":")
    clips = None
    if quantization == "int8":
        clips = np.random.default_rng(0).uniform(0, 255, (FLAGS.calibration_clips, *INPUT))
    result = export_tflite(_model(), _variant_path(variant), quantization, input_type, clips)
    print(f"{variant}: {result.size_bytes / 1e6:.1f} MB, float ops {list(result.float_ops)}")


def main(argv):
    del argv
    if FLAGS.convert_one:
        convert_one(FLAGS.convert_one)
        return
    os.makedirs(FLAGS.workdir, exist_ok=True)
    for variant in VARIANTS:
        if not os.path.exists(_variant_path(variant)):
            start = time.time()
            subprocess.run([sys.executable, __file__, f"--convert_one={variant}",
                            f"--workdir={FLAGS.workdir}"], check=True)
            print(f"exported {variant} in {time.time() - start:.0f} s", flush=True)

    import tensorflow as tf

    from keras_squeezetime.tflite.interpreter import LiteRTModel

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    clip = np.random.default_rng(1).integers(0, 256, INPUT).astype(np.float32)
    runners = {}
    for variant in VARIANTS:
        model = LiteRTModel(_variant_path(variant), FLAGS.threads)
        runners[f"LiteRT {variant.replace(':', ', ')} input"] = (lambda m=model: m.time_invoke(clip))
    keras_run = latency.keras_runners(tf, False, fold=True)(1)
    runners["Keras (TF graph, folded)"] = keras_run
    if FLAGS.official_source:
        runners["official PyTorch fp32"] = latency.torch_runners(FLAGS.official_source, FLAGS.threads)(1)
    for run in runners.values():
        for _ in range(FLAGS.warmup):
            run()
    times = {name: [] for name in runners}
    for _ in range(FLAGS.runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    keras_ms = medians["Keras (TF graph, folded)"]
    torch_ms = medians.get("official PyTorch fp32")
    print(f"\n{FLAGS.threads} threads, batch 1, {FLAGS.runs} round-robin runs\n")
    print("| model | size MB | median ms | p90 ms | vs Keras |" + (" vs PyTorch fp32 |" if torch_ms else ""))
    print("|---|---|---|---|---|" + ("---|" if torch_ms else ""))
    for name, t in times.items():
        variant = next((v for v in VARIANTS if name == f"LiteRT {v.replace(':', ', ')} input"), None)
        size = f"{os.path.getsize(_variant_path(variant)) / 1e6:.1f}" if variant else "-"
        line = (f"| {name} | {size} | {medians[name]:.1f} | {np.percentile(t, 90):.1f} | "
                f"{medians[name] / keras_ms:.2f}x |")
        if torch_ms:
            line += f" {medians[name] / torch_ms:.2f}x |"
        print(line)


if __name__ == "__main__":
    app.run(main)
