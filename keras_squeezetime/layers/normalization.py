"""In-model pixel normalisation, so the model can take raw RGB pixels."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

# ImageNet statistics on the 0-255 scale, as the official mmaction configs use.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def normalize_pixels(x, mean: Sequence[float] = PIXEL_MEAN, std: Sequence[float] = PIXEL_STD,
                     dtype: str = "float32"):
    """`(x - mean) / std` over the last axis, computed as a product with `1 / std`."""
    x = ops.cast(x, dtype)
    mean = ops.convert_to_tensor(mean, dtype=dtype)
    inv_std = ops.convert_to_tensor([1.0 / s for s in std], dtype=dtype)
    return (x - mean) * inv_std


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class VideoNormalization(keras.layers.Layer):
    """Maps RGB pixels in [0, 255] (any numeric dtype) to `(x - mean) / std` per channel.

    Args:
      mean: per-channel mean on the pixel scale.
      std: per-channel standard deviation on the pixel scale.
      folded: only cast; `fold_batch_norm` moved `mean` and `std` into the stem
        convolution (a broadcast over 3 channels is slow in LiteRT/XNNPACK).
    """

    def __init__(
        self,
        mean: Sequence[float] = PIXEL_MEAN,
        std: Sequence[float] = PIXEL_STD,
        folded: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.folded = bool(folded)
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel; got {mean} and {std}.")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, inputs):
        if self.folded:
            return ops.cast(inputs, self.compute_dtype)
        return normalize_pixels(inputs, self.mean, self.std, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std),
                "folded": self.folded}
