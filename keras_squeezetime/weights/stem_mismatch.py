"""Why weights do not fit a model, said plainly.

The two common reasons are another frame count or another width. Both show in the stem
convolution, whose input channels are 3 x frames (time squeezed into channels) and whose
output channels are 64 x the width multiplier (`stem_mismatch`). A Keras `.weights.h5`
that Keras refuses is explained by `weights_file_mismatch`: its stem, its last stage's
planes (which fix the width where the stem's rounding cannot tell it) or its head's
class count, each read from the file and named against the model's.
"""

from __future__ import annotations

import keras

from keras_squeezetime.architecture import (
    HEAD,
    LAST_STAGE_FIRST_BLOCK,
    STAGE_BLOCKS,
    STEM_CHANNELS,
    STEM_CONV,
    frames_of_stem,
    width_multiplier_of,
)

# Where a SqueezeTime model's variables lie in a Keras `.weights.h5`: Keras stores a
# functional model's layers by class name, numbered in model order. The stem is the first
# Conv2D (kernel `(5, 5, 3 x frames, channels)`), the last stage's first block the
# CTLBottleneck after all the earlier stages' (its conv1 kernel `(1, 1, in, planes)`), the
# head the ClassificationHead (its fc kernel `(features, classes)`).
H5_STEM_KERNEL = "layers/conv2d/vars/0"
H5_LAST_STAGE_CONV1_KERNEL = f"layers/ctl_bottleneck_{sum(STAGE_BLOCKS[:-1])}/conv1/vars/0"
H5_HEAD_KERNEL = "layers/classification_head/fc/vars/0"


def stem_mismatch(source: str, described: str, frames: int, channels: int,
                  model: keras.Model) -> str | None:
    """A message naming the frame count or width of `source` against `model`'s, or None.

    Args:
      source: the weights' name for the message (a file path).
      described: how the source's stem kernel is named and shaped, e.g.
        `"conv1.weight (16, 48, 5, 5)"`.
      frames: frames the source's stem takes.
      channels: the source's stem output channels.
      model: the model being loaded.
    """
    kernel = model.get_layer(STEM_CONV).kernel
    model_frames, model_channels = frames_of_stem(kernel.shape[2]), kernel.shape[3]
    if channels != model_channels:
        width = _stem_width(channels)
        return (f"{source} has width multiplier {width:g} ({described}: "
                f"{channels} stem channels) but the model has width multiplier "
                f"{_stem_width(model_channels):g} ({model_channels} stem channels): build it "
                f"with width_multiplier={width:g}.")
    if frames != model_frames:
        return (f"{source} takes {frames} frames ({described}: {3 * frames} = 3 x {frames} "
                f"squeezed channels) but the model takes {model_frames} frames: build it with "
                f"input_shape=({frames}, H, W, 3).")
    return None


def weights_file_mismatch(path: str, model: keras.Model) -> str:
    """Why the Keras `.weights.h5` at `path` does not load into `model` (which Keras
    refused), for an error message: the frame count or width (stem, then last stage) or
    the head's class counts of both, read from the file; else that its configuration
    differs. The input size is never the reason: every SqueezeTime weight is
    size-independent.
    """
    saved = saved_weights_shapes(path)
    stem = saved[H5_STEM_KERNEL]
    if stem is not None and len(stem) == 4 and stem[2] % 3 == 0:
        message = _try(lambda: stem_mismatch(path, f"its stem kernel {stem}",
                                             frames_of_stem(stem[2]), stem[3], model))
        if message:
            return message
    conv1 = saved[H5_LAST_STAGE_CONV1_KERNEL]
    model_planes = _try(lambda: int(model.get_layer(LAST_STAGE_FIRST_BLOCK).planes))
    if conv1 is not None and model_planes is not None and conv1[-1] != model_planes:
        width = width_multiplier_of(conv1[-1])
        return (f"{path} has width multiplier {width:g} (its last stage has {conv1[-1]} planes: "
                f"{LAST_STAGE_FIRST_BLOCK}'s conv1 kernel {conv1}) but the model has width "
                f"multiplier {width_multiplier_of(model_planes):g} ({model_planes} planes): "
                f"build it with width_multiplier={width:g}.")
    head = saved[H5_HEAD_KERNEL]
    model_classes = _model_classes(model)
    fresh_head = ("or put the config.json of the run it comes from beside it to load its "
                  "backbone and leave the head fresh (fine-tuning)")
    if head is not None and model_classes != head[-1]:
        has = (f"a {model_classes}-class head" if model_classes is not None
               else "no classification head")
        return (f"{path} holds a {head[-1]}-class head (head/fc kernel {head}) but the model "
                f"has {has}: build it with num_classes={head[-1]}, {fresh_head}.")
    if head is None and stem is not None and model_classes is not None:
        return (f"{path} holds no classification head (a backbone) but the model has a "
                f"{model_classes}-class head: build it with include_top=False, {fresh_head}.")
    return ("it was saved from a model of another configuration (width, frames or head; "
            "not the input size, which every weight is independent of); a config.json "
            "beside it would say which.")


def saved_weights_shapes(path: str) -> dict[str, tuple[int, ...] | None]:
    """The shapes of the stem kernel, the last stage's conv1 kernel and the head's fc
    kernel in a Keras `.weights.h5` (keys `H5_STEM_KERNEL`, `H5_LAST_STAGE_CONV1_KERNEL`,
    `H5_HEAD_KERNEL`), None for each not found or a file that cannot be read."""
    import h5py  # a Keras dependency, imported only on this error path

    keys = (H5_STEM_KERNEL, H5_LAST_STAGE_CONV1_KERNEL, H5_HEAD_KERNEL)
    shapes: dict[str, tuple[int, ...] | None] = dict.fromkeys(keys)
    try:
        with h5py.File(path, "r") as handle:
            for key in keys:
                value = handle.get(key)
                if isinstance(value, h5py.Dataset):
                    shapes[key] = tuple(int(n) for n in value.shape)
    except OSError:
        pass
    return shapes


def _stem_width(channels: int) -> float:
    # The stem rounds the width coarsely: the simplest multiplier giving these channels.
    return width_multiplier_of(channels, STEM_CHANNELS)


def _model_classes(model: keras.Model) -> int | None:
    return _try(lambda: int(model.get_layer(HEAD).num_classes))


def _try(compute):
    """`compute()`, or None when the model lacks the layer (not a SqueezeTime model)."""
    try:
        return compute()
    except (ValueError, AttributeError):
        return None
