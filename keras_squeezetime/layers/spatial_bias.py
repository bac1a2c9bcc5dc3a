"""A constant bias per position and channel: the folded stem's mean term."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class SpatialBias(keras.layers.Layer):
    """Adds a `(height, width, channels)` bias map to `(batch, height, width, channels)` inputs.

    `fold_batch_norm` puts the stem's BN shift and the pixel mean here. The mean cannot
    become a per-channel convolution bias: the stem zero-pads *normalised* pixels, so
    output positions whose window overlaps the padding see less of the mean.

    Args:
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=tuple(input_shape[1:]), initializer="zeros")

    def call(self, inputs):
        return inputs + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        # Explicit: Keras' automatic config cannot hold a `DTypePolicy` object as `dtype`.
        return super().get_config()
