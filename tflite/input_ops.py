"""uint8 input conversions rewritten into ops XNNPACK runs.

The converter turns a uint8 graph input into float with a CAST (float models) or into
int8 with a uint8->int8 QUANTIZE (int8 models). XNNPACK takes neither, so they run in
LiteRT's own kernels, outside the delegate: on a 16x224x224 clip the QUANTIZE alone
costs ~2.4 ms, a fifth of the whole int8 model. A DEQUANTIZE of the uint8 tensor with
scale 1 and zero point 0 yields exactly the pixel values in float, and XNNPACK runs
both it and a float->int8 QUANTIZE, so:

  CAST(uint8 -> float32)        becomes  DEQUANTIZE
  QUANTIZE(uint8 -> int8)       becomes  DEQUANTIZE -> QUANTIZE(float32 -> int8)

Both compute the same values as before (pixels are integers in [0, 255]).
"""

from __future__ import annotations

from keras_squeezetime.tflite import flatbuffer


def delegate_uint8_input(model_bytes: bytes) -> bytes:
    """Returns `model_bytes` with its uint8 input conversions made delegable (see module doc).

    Only ops reading a subgraph input are touched; a model without them is returned
    unchanged. A CAST input gets quantisation parameters scale 1, zero point 0, so the
    DEQUANTIZE reproduces the cast.
    """
    model = flatbuffer.read(model_bytes)
    uint8, int8, float32 = (flatbuffer.tensor_type(t) for t in ("UINT8", "INT8", "FLOAT32"))
    changed = False
    for subgraph in model.subgraphs:
        inputs = set(subgraph.inputs)
        for position in range(len(subgraph.operators) - 1, -1, -1):
            op = subgraph.operators[position]
            name = flatbuffer.op_name(model, op)
            if name not in ("CAST", "QUANTIZE") or op.inputs[0] not in inputs:
                continue
            source = subgraph.tensors[op.inputs[0]]
            target = subgraph.tensors[op.outputs[0]]
            if source.type != uint8:
                continue
            if name == "CAST" and target.type == float32:
                source.quantization = flatbuffer.quantization([1.0], [0])
                op.opcodeIndex = flatbuffer.opcode_index(model, "DEQUANTIZE")
                op.builtinOptionsType, op.builtinOptions = 0, None
                changed = True
            elif name == "QUANTIZE" and target.type == int8:
                as_float = flatbuffer.new_tensor(subgraph, source, "FLOAT32",
                                                 source.name + b"/dequantized")
                dequantize = flatbuffer.new_operator(model, "DEQUANTIZE", [op.inputs[0]],
                                                     [as_float])
                op.inputs = [as_float]
                subgraph.operators.insert(position, dequantize)
                changed = True
    if not changed:
        return model_bytes
    return flatbuffer.write(model)
