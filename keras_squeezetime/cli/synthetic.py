"""`squeezetime-synthetic`: write the synthetic temporal-order video dataset.

Example:
  squeezetime-synthetic --output data/synthetic --train-per-class 100 --val-per-class 25
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from keras_squeezetime.cli.entry_point import run_tool
from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset

FLAGS = flags.FLAGS

flags.DEFINE_string("output", None, "Directory to write videos, lists and dataset.json into.")
flags.DEFINE_integer("train-per-class", 100, "Training clips per class.", lower_bound=0)
flags.DEFINE_integer("val-per-class", 25, "Validation clips per class.", lower_bound=0)
flags.DEFINE_integer(
    "frames", 64, "Frames per video; 64 covers 16 frames sampled every 4.", lower_bound=2
)
flags.DEFINE_integer("height", 128, "Frame height in pixels.", lower_bound=16)
flags.DEFINE_integer("width", 128, "Frame width in pixels.", lower_bound=16)
flags.DEFINE_float("fps", 25.0, "Frame rate stored in the videos.", lower_bound=1.0)
flags.DEFINE_integer("seed", 0, "Dataset seed: same seed, same clips and lists.", lower_bound=0)
flags.DEFINE_integer("workers", 1, "Encoding processes.", lower_bound=1)
# Underscore spellings too, as absl users often type them.
flags.DEFINE_alias("train_per_class", "train-per-class")
flags.DEFINE_alias("val_per_class", "val-per-class")
flags.mark_flag_as_required("output")


def main(argv: list[str]) -> int:
    """Generates the dataset from the flags and prints its summary as JSON."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        summary = _generate()
    except (ValueError, OSError) as error:  # an output holding other data, a file there
        print(f"squeezetime-synthetic: error: {error}", file=sys.stderr)
        return 2
    logging.info("Synthetic dataset ready in %s.", summary["output_dir"])
    print(json.dumps(summary, indent=2))
    return 0


def _generate() -> dict:
    return generate_synthetic_dataset(
        FLAGS.output,
        num_train_per_class=FLAGS["train-per-class"].value,
        num_val_per_class=FLAGS["val-per-class"].value,
        num_frames=FLAGS.frames,
        height=FLAGS.height,
        width=FLAGS.width,
        fps=FLAGS.fps,
        seed=FLAGS.seed,
        workers=FLAGS.workers,
    )


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-synthetic", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
