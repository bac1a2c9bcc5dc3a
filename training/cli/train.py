r"""`squeezetime-train`: train SqueezeTime on clip TFRecords with the paper's recipes.

    squeezetime-train --config=hmdb51 --train-data='gs://b/hmdb51/train/*.tfrecord' \
        --val-data='gs://b/hmdb51/val/*.tfrecord' --batch-size=64 --output=gs://b/runs/hmdb
    squeezetime-train --config=custom --num-classes=8 --labels=classes.txt --nohflip \
        --train-data='data/train/*.tfrecord' --frames=8 --image-size=112 --short-side=128 \
        --width-multiplier=0.25 --epochs=20 --batch-size=16 --output=runs/synthetic

Flags left unset take the `--config` recipe's values (`training/recipes.py`); every
setting, given or resolved, is written to `<output>/config.json`. Rerunning a killed run
with the same flags resumes it. A thin wrapper over `keras_squeezetime.training.train`.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from keras_squeezetime.cli.entry_point import run_tool
from keras_squeezetime.training.cli.storage import unreachable_storage_as_usage_error
from keras_squeezetime.training.recipes import RECIPES
from keras_squeezetime.training.strategy import STRATEGIES

FLAGS = flags.FLAGS

flags.DEFINE_enum("config", "custom", list(RECIPES), "Recipe (training/recipes.py).")
flags.DEFINE_string("train-data", None, "Training TFRecord glob(s), comma-separated; gs:// ok.")
flags.DEFINE_string("val-data", None, "Validation TFRecord glob(s); unset: no validation.")
flags.DEFINE_string("output", None, "Run folder (local or gs://); rerun to resume.")
flags.DEFINE_integer("num-classes", None, "Classes (required for --config=custom).", lower_bound=1)
flags.DEFINE_string("labels", None, "Class names: kinetics400|kinetics600|hmdb51 or a text file.")
flags.DEFINE_integer("frames", None, "Frames per clip.", lower_bound=1)
flags.DEFINE_integer("frame-interval", None, "Step between sampled frames.", lower_bound=1)
flags.DEFINE_integer("image-size", None, "Crop size (multiple of 16).", lower_bound=16)
flags.DEFINE_integer("short-side", None, "Short side frames are resized to before cropping.",
                     lower_bound=16)
flags.DEFINE_float("width-multiplier", 1.0, "Channel width factor, at least 1/64.",
                   lower_bound=1 / 64)
flags.DEFINE_integer("epochs", None, "Epochs; warm-up and LR milestones scale with it.",
                     lower_bound=1)
flags.DEFINE_integer("batch-size", 8, "Global batch size (all replicas).", lower_bound=1)
flags.DEFINE_enum("optimizer", None, ["sgd", "adamw"],
                  "sgd: PyTorch's SGD as the official configs; adamw (custom's default).")
flags.DEFINE_float("lr", None, "Learning rate per 64 clips (scaled to --batch-size: linearly "
                   "for sgd recipes, by the square root for custom).", lower_bound=0.0)
flags.DEFINE_float("warmup-epochs", None, "Linear warm-up epochs (cosine schedule).",
                   lower_bound=0.0)
flags.DEFINE_float("weight-decay", None, "Weight decay: coupled L2 for SGD (the Kinetics and "
                   "HMDB51 recipes), decoupled for AdamW (custom).", lower_bound=0.0)
flags.DEFINE_float("clip-norm", None, "Gradient clipping global norm (0: off).", lower_bound=0.0)
flags.DEFINE_float("backbone-lr-multiplier", None, "LR factor of everything but the head.",
                   lower_bound=0.0)
flags.DEFINE_float("dropout-rate", None, "Dropout before the classifier (recipes: 0.5).",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_boolean("hflip", None, "Random horizontal flips (official recipes: on; custom: "
                     "off, flips change direction-dependent classes).")
flags.DEFINE_list("crop-scales", None, "Multi-scale crop side / short side choices, e.g. "
                  "1,0.875,0.75 (official recipes: 1,0.875,0.75,0.66,0.5).")
flags.DEFINE_boolean("color-jitter", None, "Colour jitter (official recipes: on; custom: off, it "
                     "blurs classes told apart by colour).")
flags.DEFINE_float("random-erasing", None, "Random erasing probability per clip (official "
                   "recipes: 0.25; custom: 0).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_boolean("augment", True, "The recipe's augmentation (--noaugment: centre crop).")
flags.DEFINE_boolean("shuffle-frames", False, "Shuffle frames within clips (temporal control).")
flags.DEFINE_string("init-weights", None,
                    "Preset, .pth, .keras or .weights.h5 to start from; 'none' = random; "
                    "unset = the recipe's (ImageNet for Kinetics, K400 for HMDB51).")
flags.DEFINE_integer("steps-per-epoch", None, "Steps per epoch (default: records / batch).",
                     lower_bound=1)
flags.DEFINE_integer("validation-steps", None, "Validation batches (default: all).",
                     lower_bound=1)
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address (--strategy=tpu; empty: local).")
flags.DEFINE_boolean("mixed-precision", False, "bfloat16 compute (float16 on GPUs).")
flags.DEFINE_boolean("jit-compile", False, "XLA-compile the train step.")
flags.DEFINE_integer("seed", None, "Seed of initialisation, data order and augmentation.")
flags.DEFINE_boolean("deterministic", False, "Reproducible input order (slower).")
flags.DEFINE_integer("data-threads", None, "Private tf.data threads.", lower_bound=1)
flags.DEFINE_integer("early-stopping-patience", None, "Stop after this many epochs without a "
                     "better validation accuracy; model.keras keeps the best epoch's weights, "
                     "also when every epoch ran (needs --val-data; unset: every epoch runs and "
                     "model.keras is the last epoch's).", lower_bound=1)


def main(argv: list[str]) -> None:
    """Builds a `TrainConfig` from the flags, trains and prints the final metrics."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    for required in ("train-data", "output"):
        if not FLAGS[required].value:
            raise app.UsageError(f"--{required} is required.", exitcode=2)
    # Heavy imports after flag checks: a typo fails in a second, not after TF starts.
    from keras_squeezetime.training.train import SetupError, TrainConfig, train

    # Every flag of this module is a TrainConfig field (hyphens are the command-line spelling).
    module_flags = FLAGS.get_key_flags_for_module(sys.modules[__name__])
    config = TrainConfig(**{flag.name.replace("-", "_"): flag.value for flag in module_flags})
    try:
        with unreachable_storage_as_usage_error(config.train_data, config.val_data,
                                                config.output):
            metrics = train(config)
    except (SetupError, FileNotFoundError) as error:
        raise app.UsageError(str(error), exitcode=2) from None
    except KeyboardInterrupt:
        # The backup of the last finished epoch is on disk: the same command resumes.
        print(f"squeezetime-train: interrupted; run the same command again to resume "
              f"{config.output} after its last finished epoch.", file=sys.stderr, flush=True)
        sys.exit(130)
    logging.info("Finished: %s", config.output)
    print(json.dumps(metrics, indent=2))


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-train", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
