r"""`squeezetime-evaluate`: multi-view accuracy of a trained or official model.

    squeezetime-evaluate --model=runs/k400 --data='k400/val/*.tfrecord' --output=runs/k400/test
    squeezetime-evaluate --model=SqueezeTime_HMDB51_65.56.pth --data='hmdb/val/*.tfrecord' \
        --views=2x3 --short-side=286 --image-size=286 --labels=hmdb51 --output=eval/hmdb51

By default the test protocol recorded in the model's `config.json` (views, short side, crop
size; the Kinetics recipes: 10 clips x 3 crops of 224 at short side 224, HMDB51: 2 x 3
crops of 286 at short side 286), else Kinetics'; each flag overrides one field. Writes
`metrics.json` (`top1`, `top5` as fractions, mean and per-class accuracy, confusion
matrix, the protocol used, the corrupt records skipped), `predictions.npz` and
`confusion_matrix.png` to `--output`.
"""

from __future__ import annotations

import json

from absl import app, flags

from keras_squeezetime.cli.entry_point import run_tool
from keras_squeezetime.training.cli.storage import unreachable_storage_as_usage_error

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "Model folder, .keras, .weights.h5 (config.json beside), "
                    "official .pth checkpoint or preset name.")
flags.DEFINE_string("data", None, "TFRecord glob(s), comma-separated; gs:// ok.")
flags.DEFINE_string("views", None, "CLIPSxCROPS per video (default: the model's test "
                    "protocol; paper: 1x1 val, 10x3 Kinetics test, 2x3 HMDB51); crops 1 "
                    "(centre) or 3.")
flags.DEFINE_integer("frames", None, "Frames per clip (default: the model's).", lower_bound=1)
flags.DEFINE_integer("frame-interval", None, "Step between sampled frames (default: the "
                     "model's).", lower_bound=1)
flags.DEFINE_integer("image-size", None, "Crop size (default: the test protocol's).",
                     lower_bound=16)
flags.DEFINE_integer("short-side", None, "Short side before cropping (default: the test "
                     "protocol's).", lower_bound=16)
flags.DEFINE_integer("batch-size", 1, "Videos per batch (x views clips).", lower_bound=1)
flags.DEFINE_string("labels", None, "Class names: built-in list or text file.")
flags.DEFINE_string("output", None, "Folder for metrics.json, predictions, confusion matrix.")
flags.DEFINE_integer("max-batches", None, "Stop after this many batches (quick checks).",
                     lower_bound=1)
flags.DEFINE_boolean("skip-corrupt", True, "Skip and report corrupt records (--noskip-corrupt "
                     "stops at the first one).")


def main(argv: list[str]) -> None:
    """Evaluates `--model` on `--data` and prints the summary metrics."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    for required in ("model", "data"):
        if not FLAGS[required].value:
            raise app.UsageError(f"--{required} is required.", exitcode=2)
    from keras_squeezetime.training.evaluate import evaluate_model, parse_views

    try:
        views = parse_views(FLAGS.views) if FLAGS.views else None
        with unreachable_storage_as_usage_error(FLAGS.data, FLAGS.model, FLAGS.output):
            metrics = evaluate_model(
                FLAGS.model,
                [p.strip() for p in FLAGS.data.split(",") if p.strip()],
                views=views,
                frames=FLAGS.frames,
                frame_interval=FLAGS["frame-interval"].value,
                image_size=FLAGS["image-size"].value,
                short_side=FLAGS["short-side"].value,
                batch_size=FLAGS["batch-size"].value,
                labels=FLAGS.labels,
                output=FLAGS.output,
                max_batches=FLAGS["max-batches"].value,
                skip_corrupt=FLAGS["skip-corrupt"].value,
            )
    except (ValueError, OSError) as error:  # bad flags or files, a preset not downloadable
        raise app.UsageError(str(error), exitcode=2) from None
    summary = {k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy", "num_videos",
                                       "num_skipped", "views", "sampling", "protocol")}
    print(json.dumps(summary, indent=2))


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-evaluate", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
