"""The two common reasons weights do not fit a model, said plainly: another frame count or
another width. Both show in the stem convolution, whose input channels are 3 x frames (time
squeezed into channels) and whose output channels are 64 x the width multiplier."""

from __future__ import annotations

import keras

from keras_squeezetime.architecture import STEM_CHANNELS, STEM_CONV


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
    model_frames, model_channels = kernel.shape[2] // 3, kernel.shape[3]
    if channels != model_channels:
        return (f"{source} has width multiplier {channels / STEM_CHANNELS:g} ({described}: "
                f"{channels} stem channels) but the model has width multiplier "
                f"{model_channels / STEM_CHANNELS:g} ({model_channels} stem channels): build it "
                f"with width_multiplier={channels / STEM_CHANNELS:g}.")
    if frames != model_frames:
        return (f"{source} takes {frames} frames ({described}: {3 * frames} = 3 x {frames} "
                f"squeezed channels) but the model takes {model_frames} frames: build it with "
                f"input_shape=({frames}, H, W, 3).")
    return None
