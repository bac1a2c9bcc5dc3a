"""Reading and rewriting LiteRT flatbuffers: the one module that walks the schema.

The rewrites of this package (input ops, hybrid kernels, metadata, signatures, pinned
input ranges) and its readers (op counts, float ops, tensor names) all go through these
helpers, over the object API of the generated schema (`compat.schema()`): `read` unpacks
a model into mutable `ModelT` objects, `write` packs it back.
"""

from __future__ import annotations

from typing import Iterator

from keras_squeezetime.tflite import compat


def read(flatbuffer: bytes):
    """The mutable object tree (`ModelT`) of a `.tflite` flatbuffer."""
    return compat.flatbuffer_utils().read_model_from_bytearray(bytearray(flatbuffer))


def write(model) -> bytes:
    """The flatbuffer bytes of a `ModelT`."""
    return bytes(compat.flatbuffer_utils().convert_object_to_bytearray(model))


def tensor_type(name: str) -> int:
    """The schema's `TensorType` code of a type name: "FLOAT32", "INT8", "UINT8", ..."""
    return getattr(compat.schema().TensorType, name)


def op_name(model, op) -> str:
    """An operator's builtin name (e.g. "CONV_2D"), or `CUSTOM:<code>` for a custom op."""
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return f"CUSTOM:{code.customCode.decode()}"
    return compat.flatbuffer_utils().opcode_to_name(model, op.opcodeIndex)


def operators(model) -> Iterator[tuple[object, object, str]]:
    """`(subgraph, operator, op name)` for every operator of every subgraph, in order."""
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            yield subgraph, op, op_name(model, op)


def tensor_names(model) -> list[str]:
    """Names of every tensor of every subgraph."""
    return [tensor.name.decode() for subgraph in model.subgraphs for tensor in subgraph.tensors]


def signature_outputs(model, index: int = 0) -> dict[str, int]:
    """`{output name: tensor index}` of the model's signature `index` (`serving_default`)."""
    signature = model.signatureDefs[index]
    return {output.name.decode(): int(output.tensorIndex) for output in signature.outputs}


def set_signature(model, key: str, inputs: dict[str, int], outputs: dict[str, int]) -> None:
    """Makes `key` the model's only signature (of subgraph 0), `{name: tensor index}` each."""
    schema = compat.schema()

    def tensor_map(name: str, index: int):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, int(index)
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = key, 0
    signature.inputs = [tensor_map(name, index) for name, index in inputs.items()]
    signature.outputs = [tensor_map(name, index) for name, index in outputs.items()]
    model.signatureDefs = [signature]


def opcode_index(model, builtin: str) -> int:
    """Index of builtin op `builtin` (e.g. "DEQUANTIZE") in the model's codes, added if missing."""
    schema = compat.schema()
    code_value = getattr(schema.BuiltinOperator, builtin)
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == code_value and not code.customCode:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code_value
    # The deprecated int8 field saturates at 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
    code.deprecatedBuiltinCode = min(code_value, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def quantization(scales, zero_points, dimension: int = 0):
    """A `QuantizationParametersT` with per-tensor (one value) or per-axis scales."""
    params = compat.schema().QuantizationParametersT()
    params.scale, params.zeroPoint = list(scales), list(zero_points)
    params.quantizedDimension = dimension
    return params


def new_tensor(subgraph, like, type_name: str, name: bytes) -> int:
    """Appends an activation tensor shaped like tensor `like`; returns its index."""
    tensor = compat.schema().TensorT()
    tensor.shape = list(like.shape)
    tensor.shapeSignature = like.shapeSignature
    tensor.type = tensor_type(type_name)
    tensor.name = name
    tensor.buffer = 0  # buffer 0 is the empty one: no data, an activation
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def new_operator(model, builtin: str, inputs: list[int], outputs: list[int]):
    """A builtin operator without options (e.g. DEQUANTIZE), not yet placed in a subgraph."""
    op = compat.schema().OperatorT()
    op.opcodeIndex = opcode_index(model, builtin)
    op.inputs, op.outputs = list(inputs), list(outputs)
    return op


def set_metadata(model, entries: dict[str, bytes]) -> None:
    """Adds (or replaces) named metadata buffers, the schema's `Model.metadata` table."""
    import numpy as np

    schema = compat.schema()
    # Names read from a file are bytes; names set by this function before are str.
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name) not in entries]
    for key, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = key
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)


def read_metadata(flatbuffer: bytes, names=None) -> dict[str, bytes]:
    """`{name: bytes}` of the model's metadata entries (those in `names`, or all).

    Reads the buffers in place, without unpacking the model (weights are not copied).
    """
    model = compat.schema().Model.GetRootAsModel(flatbuffer, 0)
    found = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = entry.Name().decode()
        if names is None or name in names:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            found[name] = data.tobytes() if hasattr(data, "tobytes") else b""  # 0 when empty
    return found
