"""Batch normalisation with the official model's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    import numpy as np  # annotations only: the layers compute with keras.ops

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras counts momentum the other way).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def official_batch_norm(
    name: str, dtype: str | keras.DTypePolicy | None = None
) -> keras.layers.BatchNormalization:
    """A `BatchNormalization` over the last axis matching PyTorch's `BatchNorm2d` defaults.

    Args:
      name: the layer name.
      dtype: its dtype policy; a layer creating it passes its own (`None` takes the
        global policy).
    """
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name, dtype=dtype
    )


def kaiming_fan_out() -> keras.initializers.Initializer:
    """He-normal with fan-out, the official model's convolution initialiser."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def depthwise_kaiming_fan_out(channels: int) -> keras.initializers.Initializer:
    """`kaiming_fan_out` as PyTorch computes it for a depthwise (grouped) kernel.

    PyTorch's fan-out of a `(C, 1, kh, kw)` weight is `C * kh * kw`; Keras counts only
    `kh * kw * multiplier` for a depthwise kernel, which would make the official 2x2
    downsampling kernels `sqrt(C)` times larger. The scale puts the `C` back.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0 / channels, mode="fan_out", distribution="untruncated_normal"
    )


def torch_default_bias(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default convolution bias: uniform in `+-1 / sqrt(fan_in)`.

    The official code re-initialises only the weights, so its biases keep this default
    (`fan_in = in_channels / groups * kh * kw`).
    """
    bound = 1.0 / float(fan_in) ** 0.5
    return keras.initializers.RandomUniform(-bound, bound)


def batch_norm_affine(layer: keras.layers.BatchNormalization) -> tuple:
    """`(scale, shift)` with `BN(x) == x * scale + shift` in inference mode (NumPy arrays)."""
    import numpy as np

    gamma = np.asarray(layer.gamma) if layer.scale else 1.0
    beta = np.asarray(layer.beta) if layer.center else 0.0
    scale = gamma / np.sqrt(np.asarray(layer.moving_variance) + layer.epsilon)
    return scale, beta - np.asarray(layer.moving_mean) * scale


def fold_into(target: keras.layers.Layer, kernel: np.ndarray, bias: np.ndarray | float,
              scale: np.ndarray, shift: np.ndarray, channel_axis: int = -1) -> None:
    """Assigns `kernel * scale` and `bias * scale + shift` to a conv/dense `target`.

    `kernel` and `bias` are the unfolded layer's values (`bias` may be None); the
    output channel sits on `channel_axis` of the kernel (-2 for depthwise kernels).
    """
    import numpy as np

    shape = [1] * np.ndim(kernel)
    shape[channel_axis] = -1
    target.kernel.assign(np.asarray(kernel) * np.reshape(scale, shape))
    base = np.zeros_like(scale) if bias is None else np.asarray(bias)
    target.bias.assign(base * scale + shift)
