"""Clip-sampling flags of the CLIs that run a model on videos, and the predictor they select."""

from __future__ import annotations

from absl import flags

FLAGS = flags.FLAGS


def define_clip_flags() -> None:
    """Defines `--frames`, `--frame-interval`, `--image-size`, `--short-side` (and `_` aliases).

    Unset, each comes from the model's own settings (config.json, preset or checkpoint).
    """
    flags.DEFINE_integer("frames", None, "Frames per clip (must match the model).", lower_bound=1)
    flags.DEFINE_integer("frame-interval", None, "Step between sampled frames.", lower_bound=1)
    flags.DEFINE_integer("image-size", None, "Side of the centre crop.", lower_bound=16)
    flags.DEFINE_integer("short-side", None, "Short side the frames are resized to before "
                         "cropping.", lower_bound=16)
    for name in ("frame-interval", "image-size", "short-side"):
        flags.DEFINE_alias(name.replace("-", "_"), name)


def predictor_from_flags():
    """`load_predictor` for `--model` and `--labels` with the clip flags as overrides."""
    from keras_squeezetime.apps.predictor import load_predictor

    return load_predictor(FLAGS.model, FLAGS.labels, FLAGS.frames, FLAGS["frame-interval"].value,
                          FLAGS["image-size"].value, FLAGS["short-side"].value)
