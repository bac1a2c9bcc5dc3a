"""What a float32 LiteRT conversion costs by route: `export_tflite`, which converts the
frozen serving function, against the SavedModel route it used before.

The SavedModel route writes the model with Keras' `ExportArchive` (variables and their
saver functions) and has the converter load it (twice in TF 2.21, once only for debug
info). `export_tflite` traces the serving function once and converts it with the
variables folded to constants (`TFLiteConverter.from_concrete_functions` with
`experimental_lower_to_saved_model = False`), then writes the signature and metadata into
the flatbuffer. Both run in this process, in turn, for --cycles cycles (a fresh model each
time, so nothing is cached); prints the medians, their ratio, the op counts and the
largest difference in probabilities (JSON last).

    python benchmarks/export_route.py                    # width 0.25, 4x64x64, 5 classes
    python benchmarks/export_route.py --width 1 --frames 16 --size 224 --classes 400
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _probabilities(model_bytes: bytes, clip):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(video=clip)["probabilities"]


def _saved_model_route(model, shape) -> bytes:
    """The former route: an `ExportArchive` SavedModel, loaded by the converter."""
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            lambda video: {"probabilities": model(video, training=False)},
            input_signature=[tf.TensorSpec(shape, tf.float32, name="video")])
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, ["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=2)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.model_ops import op_counts

    shape = (1, args.frames, args.size, args.size, 3)
    clip = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    times: dict[str, list[float]] = {"saved_model": [], "frozen": []}
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        for cycle in range(args.cycles):
            keras.utils.set_random_seed(cycle)
            model = SqueezeTime(input_shape=shape[1:], num_classes=args.classes,
                                width_multiplier=args.width)
            started = time.perf_counter()
            files["saved_model"] = _saved_model_route(model, shape)
            times["saved_model"].append(time.perf_counter() - started)

            started = time.perf_counter()
            path = Path(folder) / "export_tflite.tflite"
            export_tflite(model, path)
            times["frozen"].append(time.perf_counter() - started)
            files["frozen"] = path.read_bytes()
            print(f"cycle {cycle + 1}/{args.cycles}: saved model {times['saved_model'][-1]:.1f} s,"
                  f" export_tflite (frozen) {times['frozen'][-1]:.1f} s", flush=True)

    medians = {route: statistics.median(values) for route, values in times.items()}
    ops = {route: op_counts(data) for route, data in files.items()}
    difference = float(np.abs(_probabilities(files["saved_model"], clip)
                              - _probabilities(files["frozen"], clip)).max())
    print(f"median: saved model {medians['saved_model']:.1f} s, frozen {medians['frozen']:.1f} s,"
          f" frozen x{medians['frozen'] / medians['saved_model']:.2f}")
    print(f"ops: saved model {sum(ops['saved_model'].values())}, frozen "
          f"{sum(ops['frozen'].values())}, same kinds and counts: "
          f"{ops['saved_model'] == ops['frozen']}; max probability difference {difference:.1e}")
    print(json.dumps({"seconds": times, "median": medians, "ops": ops,
                      "max_probability_difference": difference}))


if __name__ == "__main__":
    main()
