"""int8 weights for the layers an int8 export keeps in float (selective fallback).

`--float-layers` keeps chosen layers' activations in float, where int8 rounding hurt; by
default their weights stayed float32 too, so keeping stages 1-2 float grew the file from
0.30x to 0.38x of float32. Those layers lose little from int8 *weights* (the dynamic-range
export, int8 weights and float activations throughout, agrees best of all int8 forms), so
their convolution kernels are stored as per-output-channel symmetric int8. LiteRT then runs
them as hybrid convolutions (float activations, int8 weights), which XNNPACK takes.

Depthwise kernels stay float: XNNPACK has no hybrid depthwise kernel, and they are tiny.
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.tflite import flatbuffer


def quantize_float_conv_weights(model_bytes: bytes) -> tuple[bytes, int]:
    """Returns `(model, number of kernels quantised)`: float CONV_2D kernels made int8.

    A kernel is quantised when the convolution reads a float32 activation and its
    `(out, h, w, in)` kernel is a float32 constant used by no other op; scales are
    `max |w| / 127` per output channel, zero points 0.
    """
    model = flatbuffer.read(model_bytes)
    float32 = flatbuffer.tensor_type("FLOAT32")
    count = 0
    for subgraph in model.subgraphs:
        uses: dict[int, int] = {}
        for op in subgraph.operators:
            for index in op.inputs:
                uses[index] = uses.get(index, 0) + 1
        for op in subgraph.operators:
            if flatbuffer.op_name(model, op) != "CONV_2D":
                continue
            activation, kernel = (subgraph.tensors[i] for i in op.inputs[:2])
            buffer = model.buffers[kernel.buffer]
            if (activation.type != float32 or kernel.type != float32 or buffer.data is None
                    or len(buffer.data) == 0 or uses.get(op.inputs[1], 0) != 1):
                continue
            weights = np.frombuffer(bytes(buffer.data), np.float32).reshape(kernel.shape)
            scale = np.abs(weights).reshape(len(weights), -1).max(axis=1) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            quantized = np.clip(np.round(weights / scale[:, None, None, None]), -127, 127)
            buffer.data = quantized.astype(np.int8).tobytes()
            kernel.type = flatbuffer.tensor_type("INT8")
            kernel.quantization = flatbuffer.quantization(scale.tolist(), [0] * len(scale), 0)
            count += 1
    if not count:
        return model_bytes, 0
    return flatbuffer.write(model), count
