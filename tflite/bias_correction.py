"""Empirical bias correction of a full-int8 LiteRT model against its float graph.

int8 rounding shifts the mean of some output channels (clipped outliers, rounding that
is not zero-mean after a ReLU), and the shift travels down the graph. For each
convolution or dense layer with a bias, in graph order, `correct_biases` measures the
per-output-channel mean of (int8 output - float output) on calibration clips, with every
earlier op already corrected, and subtracts it from the op's int32 bias (whose scale is
input_scale * weight_scale, so the change is `round(-mean / bias_scale)`). Only bias
values change: same ops, size and speed.

The float values come from the calibrated float graph the int8 model was quantised from
(`export.calibrated_model`, or what `activation_equalization` made of it, whose channels
are rescaled; new ranges such as `activation_ranges`' leave the float values alone): the
converter keeps tensor names, so tensors are matched by name.
Both models run in the LiteRT interpreter keeping every tensor (which also keeps XNNPACK
off: LiteRT's reference int8 kernels).
"""

from __future__ import annotations

import warnings
from typing import Iterator, Sequence

import numpy as np

from keras_squeezetime.tflite import flatbuffer, input_layout
from keras_squeezetime.tflite.tensor_quantization import dequantize_output, quantize_input

_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_RELU = 1  # the schema's ActivationFunctionType.RELU


def tensor_values(model_bytes: bytes, clips: np.ndarray,
                  names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Per clip, `{tensor name: (positions, channels) float32}` (dequantised values).

    Args:
      model_bytes: a LiteRT model (float or int8, frames or stacked input layout).
      clips: `(N, T, S, S, 3)` pixel clips in [0, 255].
      names: tensor names; each value is reshaped to its last axis (the channels).
    """
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "for debugging only": reading them is the point here
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        interpreter = Interpreter(model_content=model_bytes, num_threads=2,
                                  experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    missing = [name for name in names if name not in details]
    if missing:
        raise ValueError(f"Tensors not in the model: {missing[:3]}")
    source = interpreter.get_input_details()[0]
    layout = input_layout.layout_of_shape(source["shape"])
    for clip in clips:
        interpreter.set_tensor(source["index"],
                               quantize_input(input_layout.pack(clip[None], layout), source))
        interpreter.invoke()
        values = {}
        for name in names:
            value = dequantize_output(interpreter.get_tensor(details[name]["index"]), details[name])
            values[name] = value.reshape(-1, value.shape[-1])
        yield values


def channel_errors(model_bytes: bytes, float_graph: bytes, clips: np.ndarray,
                   names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """`{op output name: (channels,) mean of int8 - float}` on `clips` (the quantity corrected).

    After a fused ReLU the mean is over the positions where the float output is positive:
    there the error is the pre-activation one that the bias shifts.
    """
    targets = _targets(flatbuffer.read(model_bytes), _names(float_graph))
    relu = {name: fused for name, _, fused in targets}
    names = list(relu if names is None else names)
    reference = _stack(tensor_values(float_graph, clips, names), names)
    return _errors(model_bytes, clips, names, reference, relu)


def correct_biases(model_bytes: bytes, float_graph: bytes,
                   clips: np.ndarray) -> tuple[bytes, dict]:
    """`(bias-corrected model, summary)`; summary: `ops`, `channels_changed`,
    `median_abs_error` (median over ops of the mean |channel mean error|, before, after).

    Args:
      model_bytes: an int8 model quantised from `float_graph`; ops it keeps float
        (`--float-layers`, hybrid or not) have their float bias corrected the same way.
      float_graph: the calibrated float graph (same tensor names).
      clips: `(N, T, S, S, 3)` calibration clips; the float values of every corrected op
        are kept in memory (N x its output size, float32).
    """
    model = flatbuffer.read(model_bytes)
    float32 = flatbuffer.tensor_type("FLOAT32")
    targets = _targets(model, _names(float_graph))
    names = [name for name, _, _ in targets]
    relu = {name: fused for name, _, fused in targets}
    reference = _stack(tensor_values(float_graph, clips, names), names)
    before = _errors(model_bytes, clips, names, reference, relu)
    changed = 0
    for position, (name, bias, _) in enumerate(targets):
        # Sequential: measured with every earlier op corrected (the first needs no rerun).
        mean = before[name] if position == 0 else _errors(
            flatbuffer.write(model), clips, [name], reference, relu)[name]
        buffer = model.buffers[bias.buffer]
        if bias.type == float32:  # an op kept float (hybrid): its bias is the value itself
            values = np.frombuffer(bytes(buffer.data), np.float32)
            changed += int(np.count_nonzero(mean))
            buffer.data = np.frombuffer((values - mean).astype(np.float32).tobytes(), np.uint8)
            continue
        values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
        step = np.round(-mean / np.asarray(bias.quantization.scale, np.float64)).astype(np.int64)
        changed += int(np.count_nonzero(step))
        buffer.data = np.frombuffer(
            np.clip(values + step, -2**31, 2**31 - 1).astype(np.int32).tobytes(), np.uint8)
    corrected = flatbuffer.write(model)
    after = _errors(corrected, clips, names, reference, relu)
    return corrected, {"ops": len(targets), "channels_changed": changed,
                       "median_abs_error": [_median_abs(before), _median_abs(after)]}


def _median_abs(errors: dict[str, np.ndarray]) -> float:
    return float(np.median([np.abs(e).mean() for e in errors.values()]))


def _names(model_bytes: bytes) -> set[str]:
    return set(flatbuffer.tensor_names(flatbuffer.read(model_bytes)))


def _targets(model, float_names: set[str]) -> list[tuple[str, object, bool]]:
    """`(output name, bias tensor, fused ReLU)` of the biased weighted ops, in graph order.

    Only ops whose output the float graph has too (the converter renames the int8 logits
    output: the head's bias stays as calibrated)."""
    subgraph = model.subgraphs[0]
    found, buffers = [], set()
    for _, op, name in flatbuffer.operators(model):
        if name not in _WEIGHTED or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        output = subgraph.tensors[op.outputs[0]].name.decode()
        bias = subgraph.tensors[op.inputs[2]]
        if output not in float_names:
            continue
        if bias.buffer in buffers:  # a shared bias cannot be corrected for one op alone
            continue
        buffers.add(bias.buffer)
        found.append((output, bias, op.builtinOptions.fusedActivationFunction == _RELU))
    return found


def _stack(values: Iterator[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
    collected: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for clip_values in values:
        for name in names:
            collected[name].append(clip_values[name])
    return {name: np.stack(v) for name, v in collected.items()}


def _errors(model_bytes, clips, names, reference, relu) -> dict[str, np.ndarray]:
    sums = {name: 0.0 for name in names}
    counts = {name: 0.0 for name in names}
    for k, clip_values in enumerate(tensor_values(model_bytes, clips, names)):
        for name in names:
            expected = reference[name][k]
            kept = (expected > 0) if relu[name] else np.ones_like(expected, bool)
            sums[name] = sums[name] + np.where(kept, clip_values[name] - expected, 0.0).sum(0)
            counts[name] = counts[name] + kept.sum(0)
    return {name: sums[name] / np.maximum(counts[name], 1.0) for name in names}
