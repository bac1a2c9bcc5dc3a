"""How far an int8 file is from a target agreement: its logit error scaled down.

For LiteRT files of one model, on one list of clips: the share of clips near the decision
boundary (top-2 logit margin of the float file under 0.25 standard deviations of its
logits) and each file's top-1 agreement with the float file, then the agreement it would
have if its logit error (file minus float, per clip and class) were 0.5x and 0.25x as
large. A target reached only at 0.5x needs half the error, about one more bit of
activation precision than the file has.

Usage (BENCHMARKS.md, "Model B redrawn reproducibly"):
  python benchmarks/int8_error_headroom.py --model /tmp/st_draws/seed3/model/model.keras \\
      --data /tmp/st_hard/data/val_list.txt --float /tmp/st_draws/seed3/bench/float32.tflite \\
      /tmp/st_draws/seed3/bench/int8.tflite /tmp/st_draws/seed3/bench/int8-eq-mse.tflite
"""

from __future__ import annotations

import argparse
import os

import numpy as np

SCALES = (1.0, 0.5, 0.25)
NEAR = 0.25  # margin, in standard deviations of the float logits


def main(model: str, data: str, float_file: str, files: list[str], limit: int | None) -> None:
    from keras_squeezetime.model_config import read_model_config
    from keras_squeezetime.tflite.calibration import load_clips
    from keras_squeezetime.tflite.int8_agreement import agreement
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    spec = read_model_config(model).clip_settings("val")
    clips, _ = load_clips(data, spec, limit)
    reference = LiteRTModel(float_file).scores(clips)
    ordered = np.sort(reference, 1)
    near = float(np.mean((ordered[:, -1] - ordered[:, -2]) / reference.std() < NEAR))
    print(f"{len(clips)} clips of {data}; near the boundary: {near:.3f}\n")
    print("| file | " + " | ".join(f"agreement, error x{s}" for s in SCALES) + " |")
    print("|---|" + "---|" * len(SCALES))
    for path in files:
        error = LiteRTModel(path).scores(clips) - reference
        row = [agreement(reference + scale * error, reference) for scale in SCALES]
        print(f"| {os.path.basename(path)} | " + " | ".join(f"{a:.3f}" for a in row) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model.keras (its config.json: clips).")
    parser.add_argument("--data", required=True, help="Video list of the clips to measure on.")
    parser.add_argument("--float", required=True, dest="float_file",
                        help="The float32 LiteRT file of the model (the reference).")
    parser.add_argument("--limit", type=int, default=None, help="At most this many clips.")
    parser.add_argument("files", nargs="+", help="LiteRT files to measure.")
    args = parser.parse_args()
    main(args.model, args.data, args.float_file, args.files, args.limit)
