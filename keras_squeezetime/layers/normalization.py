"""In-model pixel normalisation, so the model can take raw RGB pixels."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import keras
from keras import ops

# ImageNet statistics on the 0-255 scale, as the official mmaction configs use.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def normalize_pixels(x: Any, mean: Sequence[float] = PIXEL_MEAN,
                     std: Sequence[float] = PIXEL_STD, dtype: str = "float32") -> Any:
    """`(x - mean) / std` over the last axis, computed as a product with `1 / std`.

    Args:
      x: pixels, channels last: a tensor or an array of any numeric dtype.
      mean: per-channel mean, on the scale of `x`.
      std: per-channel standard deviation, on the scale of `x` (each positive).
      dtype: the dtype to compute in and return.

    Returns:
      A tensor of `x`'s shape and `dtype`.
    """
    x = ops.cast(x, dtype)
    mean = ops.convert_to_tensor(mean, dtype=dtype)
    inv_std = ops.convert_to_tensor([1.0 / s for s in std], dtype=dtype)
    return (x - mean) * inv_std


def _statistics(name: str, values: Any, positive: bool = False) -> tuple[float, ...]:
    """`values` as a tuple of finite floats (each > 0 with `positive`), or a clear error."""
    try:  # lists, tuples, NumPy vectors
        items = None if isinstance(values, (str, bytes)) else list(values)
    except TypeError:
        items = None
    if not items:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, one per channel; "
                         f"got {values!r}.")
    for value in items:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
                value) or (positive and value <= 0):
            what = "positive finite numbers" if positive else "finite numbers"
            raise ValueError(f"{name} must hold {what}, one per channel; got {values!r}.")
    return tuple(float(v) for v in items)


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class VideoNormalization(keras.layers.Layer):
    """Maps RGB pixels in [0, 255] (any numeric dtype) to `(x - mean) / std` per channel.

    Args:
      mean: per-channel mean on the pixel scale.
      std: per-channel standard deviation on the pixel scale (each positive).
      folded: only cast; `fold_batch_norm` moved `mean` and `std` into the stem
        convolution (a broadcast over 3 channels is slow in LiteRT/XNNPACK).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
      ValueError: `mean` or `std` is not a sequence of numbers, a `std` is not positive,
        they differ in length; at build, the input's last axis is not one channel per
        value.
    """

    def __init__(
        self,
        mean: Sequence[float] = PIXEL_MEAN,
        std: Sequence[float] = PIXEL_STD,
        folded: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.folded = bool(folded)
        self.mean = _statistics("mean", mean)
        self.std = _statistics("std", std, positive=True)
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std need one value per channel; got {list(mean)} and "
                             f"{list(std)}.")

    def build(self, input_shape):
        channels = input_shape[-1] if len(input_shape) else None
        if channels is not None and channels != len(self.mean):
            raise ValueError(
                f"{self.name}: mean and std have {len(self.mean)} values, one per channel, but "
                f"the input has {channels} channels (last axis of {tuple(input_shape)}).")

    def call(self, inputs):
        if self.folded:
            return ops.cast(inputs, self.compute_dtype)
        return normalize_pixels(inputs, self.mean, self.std, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std),
                "folded": self.folded}
