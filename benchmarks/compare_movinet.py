"""MoViNet-A0 (TF Model Garden) against SqueezeTime, both as LiteRT models, 2 threads, batch 1.

MoViNet-A0 is built in its TFLite-convertible form (`conv_type="2plus1d"`,
`se_type="2plus3d"`, hard-swish / hard-sigmoid, non-causal, 600 classes), with random
weights, at its paper input 50x172x172 and at 16x172x172, and converted like ours:
builtin ops only, float32 and full int8 (noise calibration: speed only). SqueezeTime
variants come from `benchmarks/tflite_latency.py --workdir` (16x224x224). Each conversion
runs in its own process; all models are timed round-robin in one run.

tf-models-official is not a dependency (the optional `bench` extra). It does not install
cleanly beside TF 2.21 with its dependencies; installing it with `--no-deps` into a
separate target directory works, never into the project venv:

  pip install --no-deps -t /tmp/scratch_tfm tf-models-official tf-keras==2.21.* pyyaml \
      gin-config tensorflow-datasets etils promise dm-tree simple-parsing \
      tensorflow-metadata immutabledict array-record pycocotools opencv-python-headless
  PYTHONPATH=/tmp/scratch_tfm python benchmarks/compare_movinet.py --threads 2 \
      --squeezetime_dir /tmp/tflite_bench --workdir /tmp/movinet_bench
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("runs", 30, "Timed round-robin rounds.")
flags.DEFINE_integer("warmup", 3, "Untimed runs per model first.")
flags.DEFINE_string("workdir", "/tmp/movinet_bench", "Where the MoViNet exports go.")
flags.DEFINE_string("squeezetime_dir", "/tmp/tflite_bench", "tflite_latency.py's --workdir.")
flags.DEFINE_string("convert_one", None, "Internal: 'frames:quantization' to export.")

SIZE = 172
MOVINET = [(50, "float32"), (50, "int8"), (16, "float32"), (16, "int8")]
SQUEEZETIME = ["float32_float32_frames", "int8_float32_frames", "int8_uint8_frames",
               "int8_uint8_stacked"]


def _movinet_path(frames: int, quantization: str) -> str:
    return os.path.join(FLAGS.workdir, f"movinet_a0_{frames}x{SIZE}_{quantization}.tflite")


def convert_one(frames: int, quantization: str) -> None:
    import tensorflow as tf
    from official.projects.movinet.modeling import movinet, movinet_model

    backbone = movinet.Movinet(
        model_id="a0", causal=False, conv_type="2plus1d", se_type="2plus3d",
        activation="hard_swish", gating_activation="hard_sigmoid",
        use_positional_encoding=False, use_external_states=False)
    model = movinet_model.MovinetClassifier(backbone, num_classes=600, output_states=False)
    shape = (1, frames, SIZE, SIZE, 3)
    model.build(shape)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="video")])
    def serve(video):
        return {"logits": model(video, training=False)}

    saved = _movinet_path(frames, quantization) + ".saved_model"
    tf.saved_model.save(model, saved, signatures={"serving_default": serve.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, ["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "int8":
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(0, 1, shape).astype(np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    with open(_movinet_path(frames, quantization), "wb") as handle:
        handle.write(flatbuffer)


def _invoke_timer(path: str, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner("serving_default")
    name, detail = next(iter(runner.get_input_details().items()))
    x = np.zeros(detail["shape"], dtype=detail["dtype"])
    return lambda: runner(**{name: x})


def main(argv):
    del argv
    if FLAGS.convert_one:
        frames, quantization = FLAGS.convert_one.split(":")
        convert_one(int(frames), quantization)
        return
    os.makedirs(FLAGS.workdir, exist_ok=True)
    for frames, quantization in MOVINET:
        if not os.path.exists(_movinet_path(frames, quantization)):
            start = time.time()
            subprocess.run([sys.executable, __file__, f"--convert_one={frames}:{quantization}",
                            f"--workdir={FLAGS.workdir}"], check=True)
            print(f"exported MoViNet-A0 {frames}x{SIZE} {quantization} in "
                  f"{time.time() - start:.0f} s", flush=True)
    models = {f"MoViNet-A0 {f}x{SIZE} {q}": _movinet_path(f, q) for f, q in MOVINET}
    for variant in SQUEEZETIME:
        path = os.path.join(FLAGS.squeezetime_dir, variant + ".tflite")
        if os.path.exists(path):
            quantization, input_type, layout = variant.split("_")
            models[f"SqueezeTime 16x224 {quantization}, {input_type} input, {layout}"] = path
    timers = {name: _invoke_timer(path, FLAGS.threads) for name, path in models.items()}
    for run in timers.values():
        for _ in range(FLAGS.warmup):
            run()
    times = {name: [] for name in timers}
    for _ in range(FLAGS.runs):
        for name, run in timers.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    print(f"\n{FLAGS.threads} threads, batch 1, {FLAGS.runs} round-robin runs\n")
    print("| model | size MB | median ms | p90 ms | XNNPACK partitions (ops outside) |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {os.path.getsize(models[name]) / 1e6:.1f} | {np.median(t):.1f} | "
              f"{np.percentile(t, 90):.1f} | {_delegation(models[name])} |")


def _delegation(path: str) -> str:
    """`partitions (OP xN, ...)`: how XNNPACK took the graph (`LiteRTModel.delegation`)."""
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    found = LiteRTModel(path, FLAGS.threads).delegation()
    outside = ", ".join(f"{op} x{count}" for op, count in found["ops_outside"].items())
    return f"{found['partitions']} ({outside or 'none'})"


if __name__ == "__main__":
    app.run(main)
