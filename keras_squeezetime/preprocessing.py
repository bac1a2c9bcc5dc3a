"""Input normalisation outside the model, for `include_preprocessing=False` models."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from keras_squeezetime.layers.normalization import normalize_pixels


def preprocess_input(x: np.ndarray | Sequence | Any,
                     data_format: str | None = None) -> np.ndarray | Any:
    """Normalises RGB pixels in [0, 255], channels last, as the official model expects.

    Returns `(x - mean) / std` per channel (ImageNet statistics on the 0-255 scale)
    as float32, for a model built with `include_preprocessing=False`. Models built
    with the default `include_preprocessing=True` take the raw pixels instead.
    Accepts NumPy arrays (and nested lists) of any rank ending in 3 channels and returns
    a NumPy array, or backend tensors and returns a tensor, as `keras.applications` does.

    Args:
      x: pixels in [0, 255], channels last, e.g. a clip `(frames, height, width, 3)` or a
        batch of them.
      data_format: `keras.applications`' argument: `None` or `"channels_last"`. SqueezeTime
        models are channels last whatever `keras.config.image_data_format()` says, so
        `None` means channels last here, and `"channels_first"` is refused.

    Returns:
      The normalised pixels, float32: a NumPy array for NumPy input, else a tensor.

    Raises:
      ValueError: `data_format` is not `None` or `"channels_last"`, or `x` does not end
        in 3 channels.
    """
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"data_format must be None or 'channels_last' (SqueezeTime models take "
            f"channels-last clips); got {data_format!r}. Move the channel axis last, e.g. "
            f"with np.moveaxis(x, 1, -1) for a channels-first clip.")
    as_numpy = not keras.ops.is_tensor(x)
    if as_numpy:
        x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"preprocess_input expects RGB input with 3 channels last; got shape "
                         f"{tuple(x.shape)}.")
    out = normalize_pixels(x)
    return np.asarray(out) if as_numpy else out
