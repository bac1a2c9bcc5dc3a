"""The Channel-Time Learning (CTL) module: TFC branch + IOI branch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

from keras_squeezetime.layers.batch_norm import fold_into, kaiming_fan_out
from keras_squeezetime.layers.dtype_policy import CompositeLayer
from keras_squeezetime.layers.interaction import InterTemporalInteraction
from keras_squeezetime.layers.temporal_focus import TemporalFocus

if TYPE_CHECKING:
    import numpy as np  # annotations only: the layers compute with keras.ops


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class ChannelTimeLearning(CompositeLayer):
    """`TFC(p * x) + IOI(x, p * x)` with `p` the temporal-focus weights of `x`.

    TFC (temporal focus convolution) is a 1x1 convolution of the re-weighted
    squeezed channels; IOI (`InterTemporalInteraction`) models spatial
    interactions across time with a gated 3x3 branch. With `fused=True`
    (inference only) the inner BNs and the BN that follows the module in its block
    are folded in; the TFC convolution then carries that BN's shift as a bias.

    Args:
      out_channels: output channels (of both branches).
      pos_embed_size: side of the IOI branch's learned positional embedding.
      fused: the inference form with the BNs folded (see `fold_batch_norm`).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); the sub-layers
        share the module's dtype policy.
    """

    def __init__(self, out_channels: int, pos_embed_size: int, fused: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.pos_embed_size = int(pos_embed_size)
        self.fused = bool(fused)
        self.temporal_focus = None  # needs the input width: created in build()
        self.tfc = keras.layers.Conv2D(
            self.out_channels, 1, use_bias=self.fused, kernel_initializer=kaiming_fan_out(),
            data_format="channels_last", dtype=self.sublayer_dtype("tfc"), name="tfc",
        )
        self.ioi = InterTemporalInteraction(
            self.out_channels, self.pos_embed_size, fused=self.fused,
            dtype=self.sublayer_dtype("ioi"), name="ioi",
        )

    def build(self, input_shape):
        self.temporal_focus = TemporalFocus(
            input_shape[-1], fused=self.fused, dtype=self.sublayer_dtype("temporal_focus"),
            name="temporal_focus",
        )
        self.temporal_focus.build(input_shape)
        self.tfc.build(input_shape)
        self.ioi.build(input_shape)

    def call(self, inputs, training=None):
        focused = self.temporal_focus(inputs, training=training) * inputs
        return self.tfc(focused) + self.ioi(inputs, focused, training=training)

    def fold_from(self, source: "ChannelTimeLearning", scale: np.ndarray,
                  shift: np.ndarray) -> None:
        """Takes an unfused `source`'s weights with the following BN (`scale`, `shift`)."""
        self.temporal_focus.fold_from(source.temporal_focus)
        fold_into(self.tfc, source.tfc.kernel, None, scale, shift)
        self.ioi.fold_from(source.ioi, scale)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "pos_embed_size": self.pos_embed_size,
            "fused": self.fused,
        }
