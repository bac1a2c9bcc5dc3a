"""Input normalisation outside the model, for `include_preprocessing=False` models."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from keras_squeezetime.layers.normalization import normalize_pixels


def preprocess_input(x: np.ndarray | Sequence | Any) -> np.ndarray | Any:
    """Normalises RGB pixels in [0, 255], channels last, as the official model expects.

    Returns `(x - mean) / std` per channel (ImageNet statistics on the 0-255 scale)
    as float32, for a model built with `include_preprocessing=False`. Models built
    with the default `include_preprocessing=True` take the raw pixels instead.
    Accepts NumPy arrays (and nested lists) of any rank ending in 3 channels and returns
    a NumPy array, or backend tensors and returns a tensor, as `keras.applications` does.
    """
    as_numpy = not keras.ops.is_tensor(x)
    if as_numpy:
        x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"preprocess_input expects RGB input with 3 channels last; got shape "
                         f"{tuple(x.shape)}.")
    out = normalize_pixels(x)
    return np.asarray(out) if as_numpy else out
