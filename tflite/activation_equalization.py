"""Per-channel activation equalisation of a calibrated float graph before int8.

LiteRT's int8 activations have one range per tensor, so a channel whose values span a
tenth of the tensor's range is rounded ten times more coarsely, relative to its size,
than the widest one (on the overfitted model of BENCHMARKS.md, per-channel ranges would
cut the rounding noise power 3-30x per tensor). Channels can be rescaled without changing
the float function wherever a positive per-channel factor passes through to linear
consumers: scale channel c of a convolution's (or dense layer's) output by s_c (its
output-channel weights and bias), carry it through ReLU, padding, max pooling, spatial
means, adds (constant maps scaled too) and products with a sigmoid gate, and divide it out
of the input-channel weights of the convolutions / dense layers that read it. Tensors tied
by such ops form a group sharing one scale per channel (a stage's residual stream is one
group); a group touching anything else (a sigmoid input, a reshape, the graph input or
logits) is left alone.

`equalize` picks s_c = (tensor range / channel range) ** strength, taking for each
channel the tensor of its group where it is widest, capped at `max_scale`; then the
calibrated ranges of the rescaled tensors are recomputed from the clips. The weights and
ranges change, the float function does not (to float rounding); composes with
`activation_ranges.mse_ranges` and `bias_correction`.
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.tflite import flatbuffer
from keras_squeezetime.tflite.bias_correction import tensor_values
from keras_squeezetime.tflite.simulated_int8 import read_graph, write_ranges, write_weights

# Kernel axis of the output channels, and of the input channels, per weighted op.
_OUTPUT_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3}
_INPUT_AXIS = {"CONV_2D": 3, "FULLY_CONNECTED": 1, "DEPTHWISE_CONV_2D": 3}
_GATES = {"LOGISTIC"}  # outputs that multiply a group without being scaled themselves
_GATE_VIEWS = {"RESHAPE", "STRIDED_SLICE"}  # views of a gate are gates
_POSITIVE_ACTIVATIONS = (0, 1)  # none, ReLU: commute with a positive scale


def equalize(calibrated: bytes, clips: np.ndarray, strength: float = 1.0,
             max_scale: float = 16.0) -> tuple[bytes, dict]:
    """`(equalised calibrated model, summary)`; summary: `groups`, `tensors`,
    `median_scale`, `max_scale`.

    Args:
      calibrated: a calibrated float model (`export.calibrated_model`).
      clips: `(N, T, S, S, 3)` pixel clips (the calibration clips).
      strength: 1 evens the channels fully, 0 changes no weight (ranges still
        recomputed); the consumers' weights grow by as much as the channels.
      max_scale: cap of any channel's factor.
    """
    spec = read_graph(calibrated)
    shapes = [list(t.shape) for t in flatbuffer.read(calibrated).subgraphs[0].tensors]
    groups, producers, consumers, constants = _groups(spec, shapes)
    members = [t for group in groups for t in group]
    low, high = channel_ranges(calibrated, clips, [spec.names[t] for t in members])
    weights: dict[int, np.ndarray] = {}

    def scaled(index: int, factors: np.ndarray, axis: int) -> None:
        value = weights.get(index, spec.constants[index].astype(np.float32))
        shape = [1] * value.ndim
        shape[axis] = factors.size
        weights[index] = value * factors.reshape(shape)

    all_scales = []
    for group in groups:
        spans = [np.maximum(np.abs(low[spec.names[t]]), np.abs(high[spec.names[t]]))
                 for t in group]
        widest = np.max([span / max(span.max(), 1e-12) for span in spans], axis=0)
        scales = np.where(widest > 1e-6, np.power(np.maximum(widest, 1e-12), -strength), 1.0)
        scales = np.clip(scales, 1.0, max_scale)  # dead channels keep 1
        all_scales.append(scales)
        for t in group:
            if t in producers:
                op = producers[t]
                scaled(op.inputs[1], scales, _OUTPUT_AXIS[op.name])
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    scaled(op.inputs[2], scales, 0)
            for op in consumers.get(t, []):
                scaled(op.inputs[1], 1.0 / scales, _INPUT_AXIS[op.name])
            for index in constants.get(t, []):
                scaled(index, scales, spec.constants[index].ndim - 1)
    _check_unshared(calibrated, weights)
    equalized = write_weights(calibrated, weights)
    # The converter's calibration is the min/max over the clips: the same, after scaling.
    names = [spec.names[t] for t in members if t in spec.ranges]
    low, high = channel_ranges(equalized, clips, names)
    ranges = {t: (float(low[spec.names[t]].min()), float(high[spec.names[t]].max()))
              for t in members if t in spec.ranges}
    scales = np.concatenate(all_scales) if all_scales else np.ones(1)
    return write_ranges(equalized, ranges), {
        "groups": len(groups), "tensors": len(members),
        "median_scale": float(np.median(scales)), "max_scale": float(scales.max())}


def _groups(spec, shapes):
    """`(groups, producers, consumers, constants)`: the rescalable tensor groups (lists of
    tensor indices), the weighted op making a tensor, the weighted ops reading one, and
    the constant maps added to one."""
    parent: dict[int, int] = {}

    def find(t: int) -> int:
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    fixed = {spec.input_index, spec.logits_index}
    gates: set[int] = set()
    producers, consumers, constants = {}, {}, {}
    for op in spec.ops:
        out = op.outputs[0]
        find(out)
        activations = [i for i in op.inputs if i >= 0 and i not in spec.constants]
        activation = getattr(op.options, "fusedActivationFunction", 0)
        if activation not in _POSITIVE_ACTIVATIONS:
            fixed.add(out)
        if op.name in _OUTPUT_AXIS:
            producers[out] = op
            consumers.setdefault(op.inputs[0], []).append(op)
            if op.name == "DEPTHWISE_CONV_2D" and op.options.depthMultiplier != 1:
                fixed.update((out, op.inputs[0]))
            if op.name == "FULLY_CONNECTED" and len(shapes[op.inputs[0]]) != 2:
                fixed.add(op.inputs[0])  # a flattening dense layer mixes positions
        elif op.name == "ADD":
            for i in (i for i in op.inputs if i >= 0):
                if i not in spec.constants:
                    union(i, out)
                elif spec.constants[i].ndim and spec.constants[i].shape[-1] == shapes[out][-1]:
                    constants.setdefault(out, []).append(i)
                else:
                    fixed.add(out)  # a scalar or broadcast constant cannot follow the scales
        elif op.name == "MUL" and len(gates.intersection(activations)) == 1 == len(activations) - 1:
            union(next(i for i in activations if i not in gates), out)  # x * sigmoid gate
        elif op.name == "MEAN" and len(shapes[op.inputs[0]]) == 4 and 3 not in {
                int(a) % 4 for a in np.ravel(spec.constants[op.inputs[1]])}:  # channels kept
            union(op.inputs[0], out)
        elif op.name in ("PAD", "MAX_POOL_2D"):
            union(op.inputs[0], out)
        else:
            if op.name in _GATES or (op.name in _GATE_VIEWS and op.inputs[0] in gates):
                gates.add(out)
            fixed.update(activations + [out])
    members: dict[int, list[int]] = {}
    for t in list(parent):
        members.setdefault(find(t), []).append(t)
    groups = [sorted(group) for group in members.values()
              if not fixed.intersection(group) and any(t in producers for t in group)
              and len({shapes[t][-1] for t in group}) == 1]
    return groups, producers, consumers, constants


def channel_ranges(model_bytes: bytes, clips: np.ndarray,
                   names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`(low, high)`: each named tensor's per-channel min and max over the clips,
    `{name: (channels,) array}` each, as the model computes them."""
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    for values in tensor_values(model_bytes, clips, names):
        for name, value in values.items():
            low[name] = np.minimum(low.get(name, np.inf), value.min(0))
            high[name] = np.maximum(high.get(name, -np.inf), value.max(0))
    return low, high


def _check_unshared(calibrated: bytes, weights: dict[int, np.ndarray]) -> None:
    """Raises if a rewritten constant shares its buffer with another tensor."""
    tensors = flatbuffer.read(calibrated).subgraphs[0].tensors
    users: dict[int, int] = {}
    for tensor in tensors:
        users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
    shared = [tensors[i].name.decode() for i in weights if users[tensors[i].buffer] > 1]
    if shared:
        raise ValueError(f"Constants shared between tensors cannot be rescaled: {shared[:3]}")
