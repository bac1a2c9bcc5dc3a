"""The squeeze: fold the time axis of a clip into the channel axis."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class TimeToChannel(keras.layers.Layer):
    """Reshapes `(batch, T, H, W, C)` to `(batch, H, W, C * T)`.

    The squeezed channel index is `c * T + t`, the order the official model gets
    from its plain `N,C,T,H,W -> N,C*T,H,W` reshape, so official stem weights load
    without permutation.

    Args:
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Raises:
      ValueError: at build, the input is not `(batch, T, H, W, C)` with static `T`, `H`,
        `W` and `C` (the reshape needs them).
    """

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 5 or None in shape[1:]:
            raise ValueError(
                f"{self.name}: expected a clip (batch, frames, height, width, channels) with "
                f"static frames, height, width and channels (they fix the squeezed channel "
                f"count); got input shape {shape}.")

    def call(self, inputs):
        _, frames, height, width, channels = inputs.shape
        x = ops.transpose(inputs, (0, 2, 3, 4, 1))  # (B, H, W, C, T)
        return ops.reshape(x, (-1, height, width, channels * frames))

    def compute_output_shape(self, input_shape):
        batch, frames, height, width, channels = input_shape
        return (batch, height, width, channels * frames)

    def get_config(self):
        # Explicit: Keras' automatic config cannot hold a `DTypePolicy` object as `dtype`.
        return super().get_config()
