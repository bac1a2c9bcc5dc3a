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


def delegate_uint8_input(flatbuffer: bytes) -> bytes:
    """Returns `flatbuffer` with its uint8 input conversions made delegable (see module doc).

    Only ops reading a subgraph input are touched; a model without them is returned
    unchanged. A CAST input gets quantisation parameters scale 1, zero point 0, so the
    DEQUANTIZE reproduces the cast.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    builtin = schema.BuiltinOperator
    changed = False
    for subgraph in model.subgraphs:
        inputs = set(subgraph.inputs)
        for position in range(len(subgraph.operators) - 1, -1, -1):
            op = subgraph.operators[position]
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            if name not in ("CAST", "QUANTIZE") or op.inputs[0] not in inputs:
                continue
            source = subgraph.tensors[op.inputs[0]]
            target = subgraph.tensors[op.outputs[0]]
            if source.type != schema.TensorType.UINT8:
                continue
            if name == "CAST" and target.type == schema.TensorType.FLOAT32:
                source.quantization = _unit_quantization(schema)
                op.opcodeIndex = _opcode(model, schema, builtin.DEQUANTIZE)
                op.builtinOptionsType, op.builtinOptions = 0, None
                changed = True
            elif name == "QUANTIZE" and target.type == schema.TensorType.INT8:
                as_float = schema.TensorT()
                as_float.shape = list(source.shape)
                as_float.shapeSignature = source.shapeSignature
                as_float.type = schema.TensorType.FLOAT32
                as_float.name = source.name + b"/dequantized"
                as_float.buffer = 0  # no data: an activation
                subgraph.tensors.append(as_float)
                dequantize = schema.OperatorT()
                dequantize.opcodeIndex = _opcode(model, schema, builtin.DEQUANTIZE)
                dequantize.inputs, dequantize.outputs = [op.inputs[0]], [len(subgraph.tensors) - 1]
                op.inputs = [len(subgraph.tensors) - 1]
                subgraph.operators.insert(position, dequantize)
                changed = True
    if not changed:
        return flatbuffer
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _unit_quantization(schema):
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [1.0], [0]
    return quantization


def _opcode(model, schema, builtin_code: int) -> int:
    """Index of `builtin_code` in the model's operator codes, added if missing."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin_code and not code.customCode:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin_code
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
