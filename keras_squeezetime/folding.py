"""Inference graph: every batch norm folded into the convolution before it.

At batch 1 on a CPU the model's time is largely per-op overhead: each BN adds
half a dozen small ops. Folding removes all 104 BNs of the full-size model (the
stem's, the blocks', the CTL module's inner ones) without changing the function
computed, up to float rounding. The in-model pixel normalisation goes into the stem
convolution too: its 3-channel broadcast is the slowest elementwise op in LiteRT.
"""

from __future__ import annotations

import copy
from typing import Any

import keras
import numpy as np

from keras_squeezetime.architecture import NORMALIZATION as _NORMALIZATION
from keras_squeezetime.architecture import SQUEEZE as _SQUEEZE
from keras_squeezetime.architecture import STEM_BIAS as _STEM_BIAS
from keras_squeezetime.architecture import STEM_BN as _STEM_BN
from keras_squeezetime.architecture import STEM_CONV as _STEM_CONV
from keras_squeezetime.architecture import STEM_PAD as _STEM_PAD
from keras_squeezetime.functional_config import rewire
from keras_squeezetime.layers import CTLBottleneck, SpatialBias, TimeToChannel
from keras_squeezetime.layers.batch_norm import batch_norm_affine, fold_into


def fold_batch_norm(model: keras.Model, fold_preprocessing: bool = True) -> keras.Model:
    """Returns an inference copy of a `SqueezeTime` model with its BNs folded.

    The copy computes the same outputs in inference mode (checked to 1e-5
    relative in the tests) with fewer, bias-carrying convolutions. It is not meant
    for training: there are no BN statistics left to update. Save and load it like
    any model (`.keras`, `safe_mode=True`).

    Args:
      model: a `SqueezeTime` model (not already folded).
      fold_preprocessing: also move the in-model pixel normalisation into the stem
        convolution (weights scaled by `1 / std`, the mean and the BN shift as a
        per-position bias map), so the copy starts with the transpose. The
        normalisation broadcasts over 3 channels, which LiteRT/XNNPACK runs slowly.
        No effect on models built with `include_preprocessing=False`.

    Raises:
      ValueError: `model` is not a SqueezeTime model (also when it holds one as a
        layer: fold that one), is already folded, or is quantised (`model.quantize`).
    """
    names = {layer.name for layer in model.layers}
    if _STEM_BN not in names:
        raise ValueError(_not_foldable(model, names))
    quantized = [layer.path for layer in model._flatten_layers()
                 if layer.quantization_mode is not None]
    if quantized:
        # Folding writes float kernels: into int8 ones they would be silently wrong.
        raise ValueError(
            f"{model.name} is quantised ({len(quantized)} layers, e.g. {quantized[0]!r}); fold "
            f"the float model first, then quantise the folded copy.")
    normalization = model.get_layer(_NORMALIZATION) if _NORMALIZATION in names else None
    if not fold_preprocessing:
        normalization = None
    config = _fused_config(model.get_config(), model, normalization is not None)
    folded = model.__class__.from_config(config)
    for layer in model.layers:
        if layer.name == _STEM_BN or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name == _STEM_CONV and normalization is not None:
            kernel, bias_map = _stem_with_normalization(model, normalization)
            target.kernel.assign(kernel)
            folded.get_layer(_STEM_BIAS).bias.assign(bias_map)
        elif layer.name == _STEM_CONV:
            fold_into(target, layer.kernel, None, *batch_norm_affine(model.get_layer(_STEM_BN)))
        elif isinstance(layer, CTLBottleneck):
            target.fold_from(layer)
        else:
            target.set_weights(layer.get_weights())
    return folded


def _not_foldable(model: keras.Model, names: set[str]) -> str:
    """Why `model` (without a stem BN) cannot be folded, and what to pass instead."""
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)
              and {_STEM_BN, _STEM_CONV} & {inner.name for inner in layer.layers}]
    if nested:
        return (
            f"{model.name} holds SqueezeTime model(s) {nested} as layers; fold_batch_norm takes "
            f"the SqueezeTime model itself: fold model.get_layer({nested[0]!r}) and build the "
            f"outer model on the folded copy.")
    if any(isinstance(layer, CTLBottleneck) and layer.fused for layer in model.layers):
        return f"{model.name} has no '{_STEM_BN}' layer: it is already folded."
    return f"{model.name} has no '{_STEM_BN}' layer: it is not a SqueezeTime model."


def _stem_with_normalization(model: keras.Model, normalization) -> tuple[np.ndarray, np.ndarray]:
    """Stem kernel taking raw pixels, and the bias map that completes it.

    conv(pad0((x - m) / s), W) = conv(pad0(x), W / s) - conv(pad0(m), W / s): the second
    term is constant but smaller where the window overlaps the zero padding.
    """
    from keras import ops

    scale, shift = batch_norm_affine(model.get_layer(_STEM_BN))
    conv = model.get_layer(_STEM_CONV)
    _, frames, height, width, channels = model.get_layer(_SQUEEZE).input.shape
    # Per squeezed channel (the squeeze layer's own order) 1 / std and mean, in float32
    # whatever the global dtype policy (a float16 one would round them and break the conv).
    squeeze = TimeToChannel(dtype="float32")
    inv_std = np.asarray(squeeze(np.broadcast_to(
        1.0 / np.asarray(normalization.std, "float32"), (1, frames, 1, 1, channels))))[0, 0, 0]
    mean = np.asarray(squeeze(np.broadcast_to(
        np.asarray(normalization.mean, "float32"), (1, frames, height, width, channels))))
    kernel = np.asarray(conv.kernel) * scale * inv_std[None, None, :, None]
    (top, bottom), (left, right) = model.get_layer(_STEM_PAD).padding
    padded = np.pad(mean, ((0, 0), (top, bottom), (left, right), (0, 0)))
    mean_term = np.asarray(ops.conv(padded, kernel, strides=conv.strides, padding="valid",
                                    data_format="channels_last"))[0]
    return kernel, shift - mean_term


def _fused_config(config: dict[str, Any], model: keras.Model,
                  fold_normalization: bool) -> dict[str, Any]:
    config = copy.deepcopy(config)
    # The stem BN's consumers read the layer that replaces it: the bias map when the
    # normalisation is folded, else the conv (which then carries the BN shift as its bias).
    replacement = _STEM_BIAS if fold_normalization else _STEM_CONV
    kept = []
    for layer in config["layers"]:
        if layer["config"].get("name") == _STEM_BN:
            if fold_normalization:  # the BN becomes the bias map, fed by the same conv
                kept.append(_stem_bias_entry(layer, model.get_layer(_STEM_BN)))
            continue
        if layer["config"].get("name") == _NORMALIZATION and fold_normalization:
            layer["config"]["folded"] = True
        if layer["config"].get("name") == _STEM_CONV:
            layer["config"]["use_bias"] = not fold_normalization
        if layer["class_name"] == "CTLBottleneck":
            layer["config"]["fused"] = True
        layer["inbound_nodes"] = rewire(layer.get("inbound_nodes", []), _STEM_BN, replacement)
        kept.append(layer)
    config["layers"] = kept
    config["output_layers"] = rewire(config["output_layers"], _STEM_BN, replacement)
    return config


def _stem_bias_entry(stem_bn_entry: dict, stem_bn: keras.layers.Layer) -> dict:
    """A functional-config entry for the stem's `SpatialBias`, wired like the stem BN.

    It takes the BN's dtype policy (not the global one, which may differ from the model's).
    """
    layer = SpatialBias(name=_STEM_BIAS, dtype=stem_bn.dtype_policy)
    layer.build(stem_bn.output.shape)
    entry = keras.saving.serialize_keras_object(layer)
    entry["name"] = _STEM_BIAS
    # The BN's call arguments (mask, training) do not apply to the bias.
    entry["inbound_nodes"] = [{"args": copy.deepcopy(node["args"]), "kwargs": {}}
                              for node in stem_bn_entry["inbound_nodes"]]
    return entry
