"""Would finer activation ranges or more bits reach the target? A simulated bound.

LiteRT's int8 activations have one range per tensor and 256 levels. This rebuilds a
model's calibrated graph in Keras ops (`tflite/simulated_int8.py`: int8 weights, every
activation rounded as LiteRT rounds it) and measures its top-1 agreement with the float
graph four ways: per-tensor ranges at 8 bits (what LiteRT runs), one range per channel at
8 bits (what no LiteRT int8 file can express), and per-tensor ranges at 9 and 10 bits.
Ranges are the min/max over the calibration clips; the graph is the one `squeezetime-export
--quantization int8` quantises, or with `--equalized` that graph after per-channel
equalisation and MSE ranges (`--target-agreement`'s third calibration).

Usage (BENCHMARKS.md, "Model B redrawn reproducibly"):
  python benchmarks/int8_range_granularity.py --model /tmp/st_draws/seed3/model/model.keras \\
      --calibration /tmp/st_hard/data/train_list.txt --data /tmp/st_hard/data/val_list.txt \\
      [--equalized]
"""

from __future__ import annotations

import argparse

import numpy as np

WAYS = (("per tensor, 8 bits", False, 8), ("per channel, 8 bits", True, 8),
        ("per tensor, 9 bits", False, 9), ("per tensor, 10 bits", False, 10))


def per_channel_ranges(calibrated: bytes, clips: np.ndarray, spec) -> dict:
    """`{tensor index: (low, high)}` per channel of every rounded tensor, over the clips."""
    from keras_squeezetime.tflite.activation_equalization import channel_ranges

    indices = [i for i in spec.rounded_tensors() if i in spec.ranges]
    low, high = channel_ranges(calibrated, clips, [spec.names[i] for i in indices])
    return {i: (low[spec.names[i]], high[spec.names[i]]) for i in indices}


def main(model: str, calibration_list: str, data: str, clips: int, equalized: bool) -> None:
    import tensorflow as tf

    from keras_squeezetime import fold_batch_norm
    from keras_squeezetime.model_loading import load_model
    from keras_squeezetime.tflite import calibration
    from keras_squeezetime.tflite.export import calibrated_model
    from keras_squeezetime.tflite.int8_agreement import agreement
    from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph

    loaded = load_model(model)
    settings = loaded.config.clip_settings("val")
    calibration_clips = calibration.calibration_clips(calibration_list, settings, clips)
    evaluation_clips, _ = calibration.load_clips(data, settings)
    calibrated = calibrated_model(fold_batch_norm(loaded.model), calibration_clips)
    if equalized:
        from keras_squeezetime.tflite.activation_equalization import equalize
        from keras_squeezetime.tflite.activation_ranges import mse_ranges

        calibrated, _ = equalize(calibrated, calibration_clips)
        calibrated, _ = mse_ranges(calibrated, calibration_clips[:128])
    spec = read_graph(calibrated)
    graph = quantized_graph_class()(spec)
    graph.build(None)
    per_channel = per_channel_ranges(calibrated, calibration_clips, spec)

    def scores(quantize: bool, by_channel: bool = False, bits: int = 8) -> np.ndarray:
        run = tf.function(lambda x: graph.run(
            x, quantize, channel_ranges=per_channel if by_channel else None,
            num_bits=bits)[spec.logits_index])
        return np.concatenate([run(tf.constant(evaluation_clips[i:i + 16], tf.float32)).numpy()
                               for i in range(0, len(evaluation_clips), 16)])

    reference = scores(False)
    print(f"{len(evaluation_clips)} clips of {data}; ranges from {len(calibration_clips)} clips"
          f"{'; equalised graph, MSE ranges' if equalized else ''}\n")
    print("| activations | simulated agreement | logit MSE |\n|---|---|---|")
    for name, by_channel, bits in WAYS:
        simulated = scores(True, by_channel, bits)
        print(f"| {name} | {agreement(simulated, reference):.3f} | "
              f"{float(np.mean((simulated - reference) ** 2)):.4f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Keras model (.keras, model folder, ...).")
    parser.add_argument("--calibration", required=True, help="Video list of calibration clips.")
    parser.add_argument("--data", required=True, help="Video list of the clips to measure on.")
    parser.add_argument("--clips", type=int, default=300, help="Calibration clips.")
    parser.add_argument("--equalized", action="store_true",
                        help="Equalise the graph and use MSE ranges first.")
    args = parser.parse_args()
    main(args.model, args.calibration, args.data, args.clips, args.equalized)
