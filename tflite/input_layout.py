"""How an exported model takes its clip: `frames` (rank 5) or `stacked` (rank 4, for GPUs/NPUs).

`frames`: `(1, T, S, S, 3)`, the Keras model's own input; the graph starts with the
squeeze, a rank-5 TRANSPOSE and RESHAPE that put time into channels (`c * T + t`).

`stacked`: `(1, S, S, 3T)`, frame `t`'s RGB at channels `3t .. 3t + 2`: what an app gets
by writing frames one after another into one channel-interleaved (HWC) buffer. LiteRT's
GPU accelerator and most NPU compilers take no tensor of rank above 4; the stacked graph
has none. The squeeze disappears: its channel order is folded into the stem
convolution's kernel (input channel `3t + c` of the new kernel is channel `c * T + t` of
the old), so no op runs for it, and the outputs are those of the frames graph.
"""

from __future__ import annotations

import copy

import numpy as np

from keras_squeezetime.architecture import NORMALIZATION, SQUEEZE, STEM_CONV, STEM_PAD
from keras_squeezetime.functional_config import input_source, layer_entry, rewire

FRAMES, STACKED = "frames", "stacked"
LAYOUTS = (FRAMES, STACKED)


def check_layout(layout: str) -> str:
    """Returns `layout`, or raises ValueError listing the layouts."""
    if layout not in LAYOUTS:
        raise ValueError(f"input_layout must be one of {LAYOUTS}; got {layout!r}.")
    return layout


def tensor_shape(clip_shape, layout: str) -> tuple[int, ...]:
    """The batch-1 input tensor shape for clips `(T, S, S, 3)` in `layout`."""
    frames, height, width, channels = (int(d) for d in clip_shape)
    if check_layout(layout) == FRAMES:
        return (1, frames, height, width, channels)
    return (1, height, width, channels * frames)


def clip_shape(tensor_shape_, layout: str) -> tuple[int, int, int, int]:
    """The pixel clip `(T, S, S, 3)` a batch-1 input tensor of `layout` holds."""
    shape = tuple(int(d) for d in tensor_shape_)
    if check_layout(layout) == FRAMES:
        if len(shape) != 5:
            raise ValueError(f"A frames-layout input is (1, T, S, S, 3); got {shape}.")
        return shape[1:]
    if len(shape) != 4 or shape[-1] % 3:
        raise ValueError(f"A stacked-layout input is (1, S, S, 3T); got {shape}.")
    return (shape[-1] // 3, shape[1], shape[2], 3)


def layout_of_shape(tensor_shape_) -> str:
    """The layout of an input tensor shape: rank 5 is `frames`, rank 4 `stacked`."""
    rank = len(tuple(tensor_shape_))
    if rank == 5:
        return FRAMES
    if rank == 4:
        return STACKED
    raise ValueError(f"Input of rank {rank} is neither (1, T, S, S, 3) nor (1, S, S, 3T).")


def pack(clips: np.ndarray, layout: str) -> np.ndarray:
    """Pixel clips `(..., T, S, S, 3)` as the model input of `layout`.

    `stacked` gives `(..., S, S, 3T)` with frame `t`'s RGB at channels `3t .. 3t + 2`;
    `frames` returns the clips unchanged.
    """
    clips = np.asarray(clips)
    if check_layout(layout) == FRAMES:
        return clips
    *lead, frames, height, width, channels = clips.shape
    moved = np.moveaxis(clips, -4, -2)  # (..., S, S, T, 3)
    return np.ascontiguousarray(moved).reshape(*lead, height, width, frames * channels)


def stacked_channel_order(frames: int, channels: int = 3) -> np.ndarray:
    """`order[3t + c] = c * T + t`: the squeezed channel each stacked channel carries."""
    return np.asarray([c * frames + t for t in range(frames) for c in range(channels)])


def stacked_model(model):
    """A copy of a SqueezeTime model that takes stacked clips `(S, S, 3T)` and has no squeeze.

    Same layer names and weights, except: the input is `(None, S, S, 3T)`; the squeeze
    layer is gone (its consumers read the normalisation, or the input); the pixel
    normalisation's per-channel mean and std are repeated for each frame; and the stem
    convolution's kernel rows are permuted into the stacked channel order. Works on
    folded (`fold_batch_norm`) and unfolded models.

    Raises:
      ValueError: `model` lacks the squeeze feeding the padded stem convolution.
    """
    names = {layer.name for layer in model.layers}
    if not {SQUEEZE, STEM_PAD, STEM_CONV} <= names:
        raise ValueError(f"{model.name} has no '{SQUEEZE}' -> '{STEM_PAD}' -> '{STEM_CONV}' "
                         "stem: not a SqueezeTime classifier.")
    _, frames, height, width, channels = model.get_layer(SQUEEZE).input.shape
    config = copy.deepcopy(model.get_config())
    squeeze = layer_entry(config, SQUEEZE)
    consumers = [layer["name"] for layer in config["layers"] if _reads(layer, SQUEEZE)]
    if consumers != [STEM_PAD] or [
            layer["name"] for layer in config["layers"] if _reads(layer, STEM_PAD)] != [STEM_CONV]:
        raise ValueError(f"{model.name}: the squeeze must feed '{STEM_PAD}' -> '{STEM_CONV}' "
                         f"alone; it feeds {consumers}.")
    source = input_source(squeeze)
    inputs = [layer["name"] for layer in config["layers"] if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError(f"{model.name} has {len(inputs)} inputs; a SqueezeTime model has one.")
    stacked_shape = [None, height, width, channels * frames]
    kept = []
    for layer in config["layers"]:
        if layer["name"] == SQUEEZE:
            continue
        if layer["name"] == inputs[0]:
            layer["config"]["batch_shape"] = stacked_shape
        if layer["name"] == NORMALIZATION:
            layer["config"]["mean"] = list(layer["config"]["mean"]) * frames
            layer["config"]["std"] = list(layer["config"]["std"]) * frames
            layer.pop("build_config", None)
        nodes = rewire(layer["inbound_nodes"], SQUEEZE, source, stacked_shape)
        layer["inbound_nodes"] = rewire(nodes, inputs[0], inputs[0], stacked_shape)
        kept.append(layer)
    config["layers"] = kept
    config["name"] = f"{model.name}_stacked"
    stacked = model.__class__.from_config(config)
    order = stacked_channel_order(frames, channels)
    for layer in model.layers:
        if not layer.weights:
            continue
        weights = layer.get_weights()
        if layer.name == STEM_CONV:
            weights[0] = weights[0][:, :, order, :]
        stacked.get_layer(layer.name).set_weights(weights)
    return stacked


def _reads(layer_config: dict, name: str) -> bool:
    """True when a functional-config layer entry takes layer `name`'s output."""
    found = []

    def visit(value):
        if isinstance(value, dict):
            history = value.get("keras_history") if "keras_history" in value else None
            if history is not None and history[0] == name:
                found.append(True)
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(layer_config.get("inbound_nodes", []))
    return bool(found)
