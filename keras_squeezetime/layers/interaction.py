"""Inter-temporal object interaction (IOI): the spatial branch of the CTL module."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
from keras import ops

from keras_squeezetime.layers.batch_norm import (
    batch_norm_affine,
    fold_into,
    kaiming_fan_out,
    official_batch_norm,
    torch_default_bias,
)
from keras_squeezetime.layers.dtype_policy import CompositeLayer
from keras_squeezetime.layers.positional import PositionalEmbedding

if TYPE_CHECKING:
    import numpy as np  # annotations only: the layers compute with keras.ops

# Width of the gate path. A constant of the official code, not the frame count.
GATE_CHANNELS = 16


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class InterTemporalInteraction(CompositeLayer):
    """`Conv3x3(x) * sigmoid(gate(focus * x))` with a position-aware large-kernel gate.

    gate: Conv3x3 -> BN -> ReLU -> + positional embedding -> Conv7x7 -> BN -> ReLU ->
    Conv3x3. Called with the focused input `focus * x` as well as `x`, so the
    product computed once by the CTL module is shared with its TFC branch.
    With `fused=True` (inference only) the two BNs are folded into their convolutions.

    Args:
      out_channels: output channels.
      pos_embed_size: side of the gate's learned positional embedding.
      fused: the inference form with the BNs folded (see `fold_batch_norm`).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); the sub-layers
        share this layer's dtype policy.
    """

    def __init__(self, out_channels: int, pos_embed_size: int, fused: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.pos_embed_size = int(pos_embed_size)
        self.fused = bool(fused)
        init = kaiming_fan_out()

        def conv(filters, kernel, name):
            return keras.layers.Conv2D(
                filters, kernel, padding="same", kernel_initializer=init,
                data_format="channels_last", dtype=self.sublayer_dtype(name), name=name,
            )

        def bn(name):
            if self.fused:
                return None
            return official_batch_norm(name, dtype=self.sublayer_dtype(name))

        self.short_conv = conv(self.out_channels, 3, "short_conv")
        self.gate_conv1 = conv(GATE_CHANNELS, 3, "gate_conv1")
        self.gate_bn1 = bn("gate_bn1")
        self.pos_embed = PositionalEmbedding(
            self.pos_embed_size, dtype=self.sublayer_dtype("pos_embed"), name="pos_embed"
        )
        self.gate_conv2 = conv(GATE_CHANNELS, 7, "gate_conv2")
        self.gate_bn2 = bn("gate_bn2")
        self.gate_conv3 = conv(self.out_channels, 3, "gate_conv3")

    def build(self, input_shape):
        gate_shape = (*input_shape[:3], GATE_CHANNELS)
        # PyTorch's default biases (the official code re-initialises only the weights).
        for conv, channels in (
            (self.short_conv, input_shape[-1]), (self.gate_conv1, input_shape[-1]),
            (self.gate_conv2, GATE_CHANNELS), (self.gate_conv3, GATE_CHANNELS),
        ):
            height, width = conv.kernel_size
            conv.bias_initializer = torch_default_bias(channels * height * width)
        self.short_conv.build(input_shape)
        self.gate_conv1.build(input_shape)
        self.pos_embed.build(gate_shape)
        self.gate_conv2.build(gate_shape)
        self.gate_conv3.build(gate_shape)
        for bn in (self.gate_bn1, self.gate_bn2):
            if bn is not None:
                bn.build(gate_shape)

    def call(self, inputs, focused, training=None):
        short = self.short_conv(inputs)
        gate = self.gate_conv1(focused)
        if self.gate_bn1 is not None:
            gate = self.gate_bn1(gate, training=training)
        gate = self.pos_embed(ops.relu(gate))
        gate = self.gate_conv2(gate)
        if self.gate_bn2 is not None:
            gate = self.gate_bn2(gate, training=training)
        gate = ops.sigmoid(self.gate_conv3(ops.relu(gate)))
        return short * gate

    def fold_from(self, source: "InterTemporalInteraction", scale: np.ndarray | float = 1.0,
                  shift: np.ndarray | float = 0.0) -> None:
        """Takes an unfused `source`'s weights, BNs folded in.

        `scale`/`shift` fold a BN that follows the whole CTL module: the IOI output
        `short * gate` scales through `short`, the shift is added by the TFC branch.
        """
        import numpy as np

        short = source.short_conv
        channels = short.kernel.shape[-1]
        fold_into(self.short_conv, short.kernel, short.bias,
                  np.broadcast_to(scale, (channels,)), 0.0)
        for conv, bn, src in (
            (self.gate_conv1, source.gate_bn1, source.gate_conv1),
            (self.gate_conv2, source.gate_bn2, source.gate_conv2),
        ):
            fold_into(conv, src.kernel, src.bias, *batch_norm_affine(bn))
        self.gate_conv3.set_weights(source.gate_conv3.get_weights())
        self.pos_embed.set_weights(source.pos_embed.get_weights())

    def compute_output_shape(self, inputs_shape, focused_shape=None):
        # Argument names follow `call` (Keras matches `<name>_shape` for several inputs).
        return (*inputs_shape[:3], self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "out_channels": self.out_channels,
            "pos_embed_size": self.pos_embed_size,
            "fused": self.fused,
        }
