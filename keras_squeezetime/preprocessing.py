"""Input normalisation for `include_preprocessing=False` models: outside the model
(`preprocess_input`), or put into a copy of it (`with_preprocessing`)."""

from __future__ import annotations

import copy
from typing import Any, Sequence

import keras
import numpy as np

from keras_squeezetime.architecture import NORMALIZATION, SQUEEZE
from keras_squeezetime.functional_config import input_source, layer_entry, rewire
from keras_squeezetime.layers.normalization import VideoNormalization, normalize_pixels
from keras_squeezetime.weights.variables import copy_weights


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


def takes_pixels(model: keras.Model) -> bool:
    """True when `model`, or a model nested in it, normalises its input in a
    `VideoNormalization` layer (also when `fold_batch_norm` moved the arithmetic into
    the stem): it takes RGB pixels in [0, 255]. False for a SqueezeTime model built with
    `include_preprocessing=False`, which takes `preprocess_input`'s output."""
    return any(isinstance(layer, VideoNormalization) for layer in model._flatten_layers())


def with_preprocessing(model: keras.Model) -> keras.Model:
    """A copy of a SqueezeTime model built with `include_preprocessing=False` that takes
    RGB pixels in [0, 255]: its layers and weights behind a `VideoNormalization` layer,
    as `SqueezeTime(include_preprocessing=True)` builds it. A model that already takes
    pixels (`takes_pixels`) is returned as it is.

    Raises:
      ValueError: `model` takes normalised input but is not a SqueezeTime model (no
        top-level squeeze layer; a SqueezeTime nested in your own model: build that one
        with `include_preprocessing=True`).
    """
    if takes_pixels(model):
        return model
    config = copy.deepcopy(model.get_config())
    try:
        squeeze = layer_entry(config, SQUEEZE)
    except KeyError:
        raise ValueError(
            f"{model.name} takes normalised input (no VideoNormalization layer) and has no "
            f"top-level {SQUEEZE!r} layer to put one before: build its SqueezeTime with "
            f"include_preprocessing=True.") from None
    source = input_source(squeeze)
    layer = VideoNormalization(name=NORMALIZATION,
                               dtype=model.get_layer(SQUEEZE).dtype_policy)
    entry = keras.saving.serialize_keras_object(layer)
    entry["name"] = NORMALIZATION
    entry["inbound_nodes"] = copy.deepcopy(squeeze["inbound_nodes"])
    squeeze["inbound_nodes"] = rewire(squeeze["inbound_nodes"], source, NORMALIZATION)
    config["layers"].insert(config["layers"].index(squeeze), entry)
    rebuilt = model.__class__.from_config(config)
    copy_weights(model, rebuilt, allow_new_head=False)
    return rebuilt
