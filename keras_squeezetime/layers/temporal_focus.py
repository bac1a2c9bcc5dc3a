"""Temporal-focus weights: per-channel gates that say which squeezed time steps matter."""

from __future__ import annotations

import keras
from keras import ops

from keras_squeezetime.layers.batch_norm import (
    batch_norm_affine,
    fold_into,
    kaiming_fan_out,
    official_batch_norm,
)
from keras_squeezetime.layers.dtype_policy import CompositeLayer


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class TemporalFocus(CompositeLayer):
    """`sigmoid(W2 ReLU(BN(W1 GAP(x))))`, shape `(batch, 1, 1, C)`.

    The paper describes max pooling here; the official code (and its checkpoints)
    use global average pooling, which is what this layer does.

    With `fused=True` (inference only, see `fold_batch_norm`) the BN is folded
    into `W1`, which then has a bias.

    Args:
      channels: channels of the input, one gate each.
      fused: the inference form with the BN folded (see `fold_batch_norm`).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); the sub-layers
        share this layer's dtype policy.
    """

    def __init__(self, channels: int, fused: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.fused = bool(fused)
        init = kaiming_fan_out()
        self.fc1 = keras.layers.Dense(
            self.channels, use_bias=self.fused, kernel_initializer=init,
            dtype=self.sublayer_dtype("fc1"), name="fc1",
        )
        self.bn = None if self.fused else official_batch_norm("bn", dtype=self.sublayer_dtype("bn"))
        self.fc2 = keras.layers.Dense(self.channels, use_bias=False, kernel_initializer=init,
                                      dtype=self.sublayer_dtype("fc2"), name="fc2")

    def build(self, input_shape):
        vector = (input_shape[0], self.channels)
        self.fc1.build((input_shape[0], input_shape[-1]))
        if self.bn is not None:
            self.bn.build(vector)
        self.fc2.build(vector)

    def call(self, inputs, training=None):
        x = self.fc1(ops.mean(inputs, axis=(1, 2)))
        if self.bn is not None:
            x = self.bn(x, training=training)
        return ops.sigmoid(self.fc2(ops.relu(x)))[:, None, None, :]

    def fold_from(self, source: "TemporalFocus") -> None:
        """Takes the weights of an unfused `source`, with its BN folded in."""
        fold_into(self.fc1, source.fc1.kernel, None, *batch_norm_affine(source.bn))
        self.fc2.kernel.assign(source.fc2.kernel)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "fused": self.fused}
