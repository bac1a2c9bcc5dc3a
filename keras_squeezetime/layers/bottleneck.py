"""The CTL block: a ResNet bottleneck whose 3x3 convolution is a CTL module."""

from __future__ import annotations

import keras
from keras import ops

from keras_squeezetime.architecture import EXPANSION
from keras_squeezetime.layers.batch_norm import (
    batch_norm_affine,
    depthwise_kaiming_fan_out,
    fold_into,
    kaiming_fan_out,
    official_batch_norm,
    torch_default_bias,
)
from keras_squeezetime.layers.ctl import ChannelTimeLearning
from keras_squeezetime.layers.dtype_policy import CompositeLayer


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class CTLBottleneck(CompositeLayer):
    """Conv1x1 -> BN -> ReLU -> CTL -> BN -> ReLU -> Conv1x1 -> BN, plus residual, ReLU.

    With `strides=2` the block first downsamples its input with a depthwise 2x2
    stride-2 convolution (with bias) and BN, and the residual is taken after that
    downsampling. When the input width differs from `planes * 4`, the residual
    goes through a 1x1 convolution and BN. With `fused=True` (inference only, see
    `fold_batch_norm`) every BN is folded into the convolution before it.

    Takes and returns channels-last feature maps `(batch, height, width, channels)`
    whatever `keras.config.image_data_format()` says.

    Args:
      planes: width of the block's inner layers; the output has `planes * 4` channels.
      pos_embed_size: side of the CTL module's learned positional embedding.
      strides: 1, or 2 to halve height and width first (rounding down).
      fused: the inference form with every BN folded (see `fold_batch_norm`).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); the sub-layers
        share the block's dtype policy.
    """

    def __init__(
        self, planes: int, pos_embed_size: int, strides: int = 1, fused: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"{self.name}: strides must be 1 or 2; got {strides}.")
        self.planes = int(planes)
        self.pos_embed_size = int(pos_embed_size)
        self.strides = int(strides)
        self.fused = bool(fused)
        self.out_channels = self.planes * EXPANSION
        init = kaiming_fan_out()

        def bn(name):
            if self.fused:
                return None
            return official_batch_norm(name, dtype=self.sublayer_dtype(name))

        if self.strides == 2:
            self.downsample = keras.layers.DepthwiseConv2D(
                2, strides=2, depthwise_initializer=init, data_format="channels_last",
                dtype=self.sublayer_dtype("downsample"), name="downsample",
            )
            self.downsample_bn = bn("downsample_bn")
        self.conv1 = self._conv1x1(self.planes, init, "conv1")
        self.bn1 = bn("bn1")
        self.ctl = ChannelTimeLearning(
            self.planes, self.pos_embed_size, fused=self.fused, dtype=self.sublayer_dtype("ctl"),
            name="ctl",
        )
        self.bn2 = bn("bn2")
        self.conv3 = self._conv1x1(self.out_channels, init, "conv3")
        self.bn3 = bn("bn3")
        self.shortcut = None  # needs the input width: created in build()
        self.shortcut_bn = None

    def _conv1x1(self, filters: int, init: keras.initializers.Initializer,
                 name: str) -> keras.layers.Conv2D:
        # A fused block's convolutions carry the folded BN's shift as their bias.
        return keras.layers.Conv2D(
            filters, 1, use_bias=self.fused, kernel_initializer=init,
            data_format="channels_last", dtype=self.sublayer_dtype(name), name=name,
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.strides == 2:
            # The official initialisation (PyTorch's fans), known once the width is.
            self.downsample.depthwise_initializer = depthwise_kaiming_fan_out(shape[-1])
            self.downsample.bias_initializer = torch_default_bias(2 * 2)
            self.downsample.build(shape)
            shape = self.downsample.compute_output_shape(shape)
        inner = (*shape[:3], self.planes)
        outer = (*shape[:3], self.out_channels)
        self.conv1.build(shape)
        self.ctl.build(inner)
        self.conv3.build(inner)
        if shape[-1] != self.out_channels:
            self.shortcut = self._conv1x1(self.out_channels, kaiming_fan_out(), "shortcut")
            self.shortcut.build(shape)
            if not self.fused:
                self.shortcut_bn = official_batch_norm(
                    "shortcut_bn", dtype=self.sublayer_dtype("shortcut_bn"))
        for bn, bn_shape in (
            (getattr(self, "downsample_bn", None), shape), (self.bn1, inner), (self.bn2, inner),
            (self.bn3, outer), (self.shortcut_bn, outer),
        ):
            if bn is not None:
                bn.build(bn_shape)

    def call(self, inputs, training=None):
        def bn(layer, x):
            return x if layer is None else layer(x, training=training)

        x = inputs
        if self.strides == 2:
            x = bn(self.downsample_bn, self.downsample(x))
        residual = x
        if self.shortcut is not None:
            residual = bn(self.shortcut_bn, self.shortcut(x))
        out = ops.relu(bn(self.bn1, self.conv1(x)))
        out = ops.relu(bn(self.bn2, self.ctl(out, training=training)))
        out = bn(self.bn3, self.conv3(out))
        return ops.relu(out + residual)

    def fold_from(self, source: "CTLBottleneck") -> None:
        """Takes the weights of an unfused `source`, every BN folded into its convolution."""
        if self.strides == 2:
            fold_into(self.downsample, source.downsample.kernel, source.downsample.bias,
                      *batch_norm_affine(source.downsample_bn), channel_axis=-2)
        pairs = [(self.conv1, source.conv1, source.bn1), (self.conv3, source.conv3, source.bn3)]
        if self.shortcut is not None:
            pairs.append((self.shortcut, source.shortcut, source.shortcut_bn))
        for target, conv, bn in pairs:
            fold_into(target, conv.kernel, None, *batch_norm_affine(bn))
        self.ctl.fold_from(source.ctl, *batch_norm_affine(source.bn2))

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.strides == 2:
            height = None if height is None else height // 2
            width = None if width is None else width // 2
        return (batch, height, width, self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "planes": self.planes,
            "pos_embed_size": self.pos_embed_size,
            "strides": self.strides,
            "fused": self.fused,
        }
