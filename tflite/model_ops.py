"""What a LiteRT flatbuffer computes: its builtin ops, and which of them run in float."""

from __future__ import annotations

import collections

from keras_squeezetime.tflite import flatbuffer

# Ops that only move data between float and integer: not "float compute" of an int8 model.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def op_counts(model_bytes: bytes) -> dict[str, int]:
    """`{op name: count}` over all subgraphs, sorted by name; custom ops as `CUSTOM:<code>`."""
    counts = collections.Counter(
        name for _, _, name in flatbuffer.operators(flatbuffer.read(model_bytes)))
    return dict(sorted(counts.items()))


def float_ops(model_bytes: bytes) -> tuple[str, ...]:
    """Ops of a quantised model whose output is float32, as `OP(output tensor name)`.

    Quantize/dequantize at the float boundaries are left out: they are the cost of float
    inputs/outputs, not float compute.
    """
    float32 = flatbuffer.tensor_type("FLOAT32")
    found = []
    for subgraph, op, name in flatbuffer.operators(flatbuffer.read(model_bytes)):
        if name in _BOUNDARY_OPS:
            continue
        outputs = [subgraph.tensors[i] for i in op.outputs if i >= 0]
        if any(t.type == float32 for t in outputs):
            found.append(f"{name}({outputs[0].name.decode()})")
    return tuple(found)


def max_tensor_rank(model_bytes: bytes) -> int:
    """The largest rank of any tensor of the model (GPU delegates take at most 4)."""
    model = flatbuffer.read(model_bytes)
    return max(len(t.shape) for subgraph in model.subgraphs for t in subgraph.tensors)
