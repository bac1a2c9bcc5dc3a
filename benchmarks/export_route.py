"""What a float32 LiteRT conversion costs by route: the SavedModel route `export_tflite`
takes, against converting a frozen concrete function of the same model.

`export_tflite` writes a SavedModel (Keras' `ExportArchive`, with its variable saver
functions) that the converter then loads, twice in TF 2.21 (once only for debug info).
The frozen route (`TFLiteConverter.from_concrete_functions` with
`experimental_lower_to_saved_model = False`) converts the traced graph with its variables
folded to constants. The frozen file has no SignatureDef and its fused tensor names may
carry names of shared constants, which is why the exporter does not use it (yet): this
script measures what switching would save. Both routes run in this process, in turn,
for --cycles cycles (a fresh model each time, so nothing is cached); prints the medians,
their ratio, the op counts and the largest output difference (JSON last).

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
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    # The probabilities: the output whose rows sum to 1.
    return next(o for o in outputs if np.allclose(o.sum(axis=-1), 1.0, atol=1e-4))


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
    import tensorflow as tf

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
            path = Path(folder) / "saved_model_route.tflite"
            export_tflite(model, path)
            times["saved_model"].append(time.perf_counter() - started)
            files["saved_model"] = path.read_bytes()

            started = time.perf_counter()
            function = tf.function(lambda video: model(video, training=False))
            concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32))
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
            converter.experimental_lower_to_saved_model = False
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            files["frozen"] = converter.convert()
            times["frozen"].append(time.perf_counter() - started)
            print(f"cycle {cycle + 1}/{args.cycles}: saved model {times['saved_model'][-1]:.1f} s,"
                  f" frozen {times['frozen'][-1]:.1f} s", flush=True)

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
