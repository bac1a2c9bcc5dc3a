"""Learned positional embedding of the IOI branch, resized to the feature map."""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np
from keras import ops


def align_corners_matrix(out_size: int, in_size: int) -> np.ndarray:
    """`(out_size, in_size)` matrix of 1-D linear interpolation with `align_corners=True`.

    Multiplying by it on both spatial axes reproduces PyTorch's
    `F.interpolate(mode="bilinear", align_corners=True)`.
    """
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    if in_size == 1 or out_size == 1:
        matrix[:, 0] = 1.0
        return matrix
    positions = np.arange(out_size) * (in_size - 1) / (out_size - 1)
    lower = np.minimum(np.floor(positions).astype(int), in_size - 2)
    frac = positions - lower
    matrix[np.arange(out_size), lower] = 1.0 - frac
    matrix[np.arange(out_size), lower + 1] += frac
    return matrix


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class PositionalEmbedding(keras.layers.Layer):
    """Adds a learned `(size, size, channels)` map, bilinearly resized to the input's size.

    The official model stores one `size x size` embedding per CTL module (56, 28,
    14, 7 per stage for 224 px input) and resizes it with `align_corners=True`
    whenever the feature map differs. The input size is static, so the resize is
    two constant matrices computed once at build time.

    Args:
      size: side of the learned embedding (a positive integer).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
      ValueError: `size` is not a positive integer; at build, the input is not a
        `(batch, height, width, channels)` map of static size.
    """

    def __init__(self, size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"{self.name}: size (the embedding's side) must be a positive "
                             f"integer; got {size!r}.")
        self.size = int(size)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expected a (batch, height, width, channels) feature "
                             f"map; got input shape {tuple(input_shape)}.")
        height, width, channels = input_shape[1], input_shape[2], input_shape[3]
        if height is None or width is None:
            raise ValueError(
                f"{self.name}: the positional embedding needs a static feature-map size; "
                f"got input shape {tuple(input_shape)}."
            )
        self.embedding = self.add_weight(
            name="embedding",
            shape=(self.size, self.size, channels),
            # kaiming_normal(fan_out) of the official (1, C, P, P) tensor: fan_out = P * P.
            initializer=keras.initializers.RandomNormal(stddev=float(np.sqrt(2.0 / self.size**2))),
        )
        self._resize = (height, width) != (self.size, self.size)
        self._rows = align_corners_matrix(height, self.size).astype("float32")
        self._cols = align_corners_matrix(width, self.size).astype("float32")

    def resized_embedding(self) -> Any:
        """The embedding at the feature-map size, `(H, W, channels)`, in the compute dtype.

        Returns:
          A backend tensor (a symbolic one inside a functional model).
        """
        embedding = ops.cast(self.embedding, self.compute_dtype)
        if not self._resize:
            return embedding
        rows = ops.convert_to_tensor(self._rows, dtype=self.compute_dtype)
        cols = ops.convert_to_tensor(self._cols, dtype=self.compute_dtype)
        return ops.einsum("hp,pqc,wq->hwc", rows, embedding, cols)

    def call(self, inputs):
        return inputs + self.resized_embedding()[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size}
