"""Batch-1 latency of the full-size SqueezeTime (16x224x224, 400 classes) as LiteRT variants,
against the Keras model and the official PyTorch model, all timed in ONE run.

Each runtime (LiteRT, TensorFlow/Keras, PyTorch) is timed alone in its own process, in
turn, for several cycles: in one process, one runtime's spinning worker threads slowed
the next one's runs by 10-20 %. Cycling spreads changes of machine load over all of them.

Each variant is exported in its own process (the TF 2.20/2.21 converter leaks memory per
call): float32 and full int8 (each with float and uint8 input, the uint8 ones also in the
stacked input layout) and dynamic-range, all from the folded graph (`fold_batch_norm`: BNs
and pixel normalisation folded) with seeded random weights whose BN statistics come from a
noise batch, so activation ranges look trained (weights do not change the latency
otherwise; int8 is calibrated on noise clips). Ratios are the result; absolute
milliseconds move with the machine's load. The LiteRT files run in the Interpreter, the
uint8-input ones also through the CompiledModel API (`--compiled_model`).

The roof: one 3x3 convolution (28x28, 256 -> 256 channels, ReLU) exported as int8 and as
float32 and timed with the LiteRT variants. Its multiply-adds per second are what XNNPACK's
convolution kernels reach on this CPU; the GMAC/s column puts every model against it
(SqueezeTime: multiply-adds counted by `keras_squeezetime.complexity`), and the last line
gives the fastest an int8 SqueezeTime could run at the roof's rate, as a ratio to PyTorch.

Usage:
  python benchmarks/tflite_latency.py --threads 2 --runs 30 --cycles 3 --workdir /tmp/tflite_bench \
      [--official_source /opt/official/SqueezeTime.py]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# benchmarks/latency.py: the Keras and official PyTorch runners, and the flags --threads,
# --runs, --warmup, --cycles and --official_source, which this script shares.
import latency  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/squeezetime_tflite_bench", "Where the variants are written.")
flags.DEFINE_string("convert_one", None,
                    "Internal: export one variant 'quantization:input_type:input_layout'.")
flags.DEFINE_integer("calibration_clips", 8, "Noise clips for int8 calibration.")
flags.DEFINE_integer("burst", 5, "LiteRT variants: timed runs in a row per model and round, "
                     "after one untimed run, so each is timed warm, as an app calling it sees it.")
flags.DEFINE_string("time_runtime", None, "Internal: time one runtime (litert|keras|torch).")
flags.DEFINE_bool("compiled_model", True, "Also time the uint8-input variants through the "
                  "CompiledModel API (what Android apps use), besides the Interpreter.")

KERAS, TORCH = "Keras (TF graph, folded)", "official PyTorch fp32"

INPUT = (16, 224, 224, 3)
# quantization:input type:input layout
VARIANTS = ("float32:float32:frames", "float32:uint8:frames", "float32:uint8:stacked",
            "dynamic:float32:frames", "int8:float32:frames", "int8:uint8:frames",
            "int8:uint8:stacked")
COMPILED_VARIANTS = ("float32:uint8:frames", "float32:uint8:stacked", "int8:uint8:frames",
                     "int8:uint8:stacked")
COMPILED = " (CompiledModel)"
ROOF = (28, 256, 256, 3)  # one convolution: side, input channels, output channels, kernel
ROOF_VARIANTS = ("roof:int8", "roof:float32")


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

    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    batch = np.random.default_rng(2).uniform(0, 255, (clips, *INPUT)).astype(np.float32)
    model(batch, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def _variant_path(variant: str) -> str:
    return os.path.join(FLAGS.workdir, variant.replace(":", "_") + ".tflite")


def _roof_bytes(quantization: str) -> bytes:
    """One ReLU convolution of shape ROOF as a LiteRT model, int8 (int8 in/out) or float32."""
    import keras
    import tensorflow as tf

    side, channels, filters, kernel = ROOF
    keras.utils.set_random_seed(0)
    inputs = keras.Input((side, side, channels), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(filters, kernel, padding="same",
                                                    activation="relu")(inputs))
    function = tf.function(lambda x: model(x)).get_concrete_function(
        tf.TensorSpec((1, side, side, channels)))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.experimental_lower_to_saved_model = False
    if quantization == "int8":
        noise = np.random.default_rng(0).uniform(0, 1, (4, 1, side, side, channels))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x.astype(np.float32)] for x in noise)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _roof_name(variant: str) -> str:
    side, channels, filters, kernel = ROOF
    return (f"roof: one {kernel}x{kernel} conv {side}x{side}, {channels}->{filters}, "
            f"{variant.split(':')[1]}")


def _roof_runner(path: str):
    """Runs the roof's convolution once per call (a zero input set once, as time_invoke does)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=FLAGS.threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    interpreter.set_tensor(source["index"], np.zeros(source["shape"], source["dtype"]))
    return interpreter.invoke


def convert_one(variant: str) -> None:
    from keras_squeezetime.tflite.export import export_tflite

    if variant.startswith("roof:"):
        with open(_variant_path(variant), "wb") as handle:
            handle.write(_roof_bytes(variant.split(":")[1]))
        return
    quantization, input_type, layout = variant.split(":")
    clips = None
    if quantization == "int8":
        clips = np.random.default_rng(0).uniform(0, 255, (FLAGS.calibration_clips, *INPUT))
    result = export_tflite(_model(), _variant_path(variant), quantization, input_type, clips,
                           input_layout=layout)
    print(f"{variant}: {result.size_bytes / 1e6:.1f} MB, float ops {list(result.float_ops)}")


def _runners(runtime: str) -> dict:
    """`{name: run}` of one runtime: the LiteRT variants, Keras, or the official PyTorch."""
    clip = np.random.default_rng(1).integers(0, 256, INPUT).astype(np.float32)
    if runtime == "litert":
        from keras_squeezetime.tflite.compiled_model import CompiledModelRunner
        from keras_squeezetime.tflite.interpreter import LiteRTModel

        runners = {}
        for variant in VARIANTS:
            model = LiteRTModel(_variant_path(variant), FLAGS.threads)
            runners[_litert_name(variant)] = lambda m=model: m.time_invoke(clip)
            if FLAGS.compiled_model and variant in COMPILED_VARIANTS:
                compiled = CompiledModelRunner(model, "cpu")
                runners[_litert_name(variant) + COMPILED] = lambda c=compiled: c.time_run(clip)
        for variant in ROOF_VARIANTS:
            runners[_roof_name(variant)] = _roof_runner(_variant_path(variant))
        return runners
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if runtime == "keras":
        return {KERAS: latency.keras_runners(tf, False, fold=True)(1)}
    return {TORCH: latency.torch_runners(FLAGS.official_source, FLAGS.threads)(1)}


def time_runtime(runtime: str) -> None:
    """Worker: times one runtime's models (round-robin bursts) and prints `{name: [ms]}`."""
    runners = _runners(runtime)
    for run in runners.values():
        for _ in range(FLAGS.warmup):
            run()
    times = {name: [] for name in runners}
    for _ in range(-(-FLAGS.runs // FLAGS.burst)):
        for name, run in runners.items():
            run()
            for _ in range(FLAGS.burst):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
    print("TIMES " + json.dumps(times))


def _litert_name(variant: str) -> str:
    quantization, input_type, layout = variant.split(":")
    return f"LiteRT {quantization}, {input_type} input{', stacked' if layout == 'stacked' else ''}"


def main(argv):
    del argv
    if FLAGS.convert_one:
        convert_one(FLAGS.convert_one)
        return
    if FLAGS.time_runtime:
        time_runtime(FLAGS.time_runtime)
        return
    os.makedirs(FLAGS.workdir, exist_ok=True)
    for variant in VARIANTS + ROOF_VARIANTS:
        if not os.path.exists(_variant_path(variant)):
            start = time.time()
            subprocess.run([sys.executable, __file__, f"--convert_one={variant}",
                            f"--workdir={FLAGS.workdir}"], check=True)
            print(f"exported {variant} in {time.time() - start:.0f} s", flush=True)

    runtimes = ["litert", "keras"] + (["torch"] if FLAGS.official_source else [])
    times: dict[str, list[float]] = {}
    for cycle in range(FLAGS.cycles):
        for runtime in runtimes:
            result = subprocess.run(
                [sys.executable, __file__, f"--time_runtime={runtime}",
                 f"--workdir={FLAGS.workdir}",
                 f"--threads={FLAGS.threads}", f"--runs={FLAGS.runs}", f"--burst={FLAGS.burst}",
                 f"--warmup={FLAGS.warmup}", f"--official_source={FLAGS.official_source or ''}",
                 f"--{'' if FLAGS.compiled_model else 'no'}compiled_model"],
                check=True, capture_output=True, text=True)
            line = next(candidate for candidate in result.stdout.splitlines()
                        if candidate.startswith("TIMES "))
            for name, values in json.loads(line[len("TIMES "):]).items():
                times.setdefault(name, []).extend(values)
            print(f"cycle {cycle + 1}/{FLAGS.cycles}: timed {runtime}", flush=True)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    keras_ms, torch_ms = medians[KERAS], medians.get(TORCH)
    model_macs = _squeezetime_multiply_adds()
    side, channels, filters, kernel = ROOF
    roof_macs = side * side * channels * filters * kernel * kernel
    print(f"\n{FLAGS.threads} threads, batch 1; {FLAGS.cycles} cycles, each runtime alone in its "
          f"own process per cycle, {FLAGS.runs} runs per model per cycle; SqueezeTime "
          f"{model_macs / 1e9:.3f} G multiply-adds, the roof's convolution "
          f"{roof_macs / 1e9:.3f} G\n")
    print("| model | size MB | median ms | p90 ms | GMAC/s | vs Keras |"
          + (" vs PyTorch fp32 |" if torch_ms else ""))
    print("|---|---|---|---|---|---|" + ("---|" if torch_ms else ""))
    for name, t in times.items():
        variant = next((v for v in VARIANTS if name.replace(COMPILED, "") == _litert_name(v)), None)
        size = f"{os.path.getsize(_variant_path(variant)) / 1e6:.1f}" if variant else "-"
        macs = roof_macs if name.startswith("roof:") else model_macs
        line = (f"| {name} | {size} | {medians[name]:.2f} | {np.percentile(t, 90):.2f} | "
                f"{macs / medians[name] / 1e6:.0f} | {medians[name] / keras_ms:.2f}x |")
        if torch_ms:
            line += f" {medians[name] / torch_ms:.2f}x |"
        print(line)
    at_roof = model_macs / (roof_macs / medians[_roof_name("roof:int8")])
    print(f"\nint8 SqueezeTime at the int8 roof's rate: {at_roof:.2f} ms"
          + (f" = {at_roof / torch_ms:.3f}x PyTorch fp32" if torch_ms else ""))


def _squeezetime_multiply_adds() -> float:
    """Multiply-adds of one 16x224x224 clip through the default SqueezeTime."""
    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.complexity import count_multiply_adds

    return count_multiply_adds(SqueezeTime(weights=None))["total"]


if __name__ == "__main__":
    app.run(main)
