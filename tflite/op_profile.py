"""Where a LiteRT model's time goes: every operator timed alone, grouped by op and by stage.

The Python LiteRT packages expose no op profiler (TFLite's `benchmark_model
--enable_op_profiling` is a C++ binary), so each operator of the graph is cut out into a
one-op model (its constant inputs with it, its other inputs fed random data of their
dtype and quantisation) and timed in the interpreter with XNNPACK and the model's thread
count, as the whole model runs. The sum of the ops comes out a little above the whole
model's time (each run pays the invoke overhead once per op, and an op alone starts with
cold caches), so read the shares, not the absolute sums.

`python benchmarks/tflite_op_profile.py model.tflite` prints the tables.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time

import numpy as np

from keras_squeezetime.tflite import flatbuffer


@dataclasses.dataclass(frozen=True)
class OpTime:
    """One operator of the model, timed alone.

    Attributes:
      index: its position in the subgraph's execution order.
      op: builtin name, e.g. "CONV_2D".
      output: its first output tensor's name.
      group: the SqueezeTime layer group it belongs to ("stem", "stage1".."stage4", "head")
        or "io" (input/output conversions outside any layer).
      dtype: its first output's type name, e.g. "INT8", "FLOAT32".
      median_ms: median milliseconds of one invocation.
    """

    index: int
    op: str
    output: str
    group: str
    dtype: str
    median_ms: float


def single_op_model(model_bytes: bytes, index: int) -> bytes:
    """A model holding only operator `index` of subgraph 0, its constant inputs included.

    The op's other inputs become the model's inputs, its outputs the model's outputs.
    """
    return _single_op_model(flatbuffer.read(model_bytes), index)


def _single_op_model(model, index: int) -> bytes:
    """`single_op_model` on an unpacked model, which it leaves unchanged."""
    from keras_squeezetime.tflite import compat

    schema = compat.schema()
    source = model.subgraphs[0]
    op = copy.copy(source.operators[index])
    used = [i for i in [*op.inputs, *op.outputs, *(op.intermediates or [])] if i >= 0]
    order = list(dict.fromkeys(used))
    remap = {old: new for new, old in enumerate(order)}
    buffers, tensors = [schema.BufferT()], []
    for old in order:
        tensor = copy.copy(source.tensors[old])
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        if data is not None and len(data):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
    op.outputs = [remap[i] for i in op.outputs]
    if op.intermediates:
        op.intermediates = [remap[i] for i in op.intermediates]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, [op]
    subgraph.inputs = [i for i in op.inputs if i >= 0 and not tensors[i].buffer]
    subgraph.outputs = list(op.outputs)
    single = schema.ModelT()
    single.version, single.operatorCodes = model.version, model.operatorCodes
    single.subgraphs, single.buffers = [subgraph], buffers
    return flatbuffer.write(single)


def time_model(model_bytes: bytes, threads: int = 2, runs: int = 20, warmup: int = 3,
               seed: int = 0) -> float:
    """Median milliseconds of one invocation on random inputs of the right dtype."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            value = rng.normal(0, 1, detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def group_of_tensor(name: str) -> str:
    """The SqueezeTime layer group a tensor name lies under, or "io" for none.

    Tensor names follow the Keras call path, e.g. `squeezetime_1/stage1_block1_1/ctl_1/...`
    (call suffixes `_1` are stripped); a fused op's name lists several paths, `;`-separated,
    and the first that names a layer decides.
    """
    from keras_squeezetime.architecture import layer_group

    for path in name.split(";"):
        for part in path.split("/"):
            stripped = re.sub(r"_\d+$", "", part)
            try:
                return layer_group(stripped)
            except ValueError:
                continue
    return "io"


def profile(model_bytes: bytes, threads: int = 2, runs: int = 20, warmup: int = 3,
            progress=None) -> list[OpTime]:
    """Every operator of subgraph 0 timed alone (see the module doc), in execution order."""
    model = flatbuffer.read(model_bytes)
    schema_types = {value: name for name, value in vars(type_names()).items()
                    if not name.startswith("_")}
    subgraph = model.subgraphs[0]
    rows = []
    for index, op in enumerate(subgraph.operators):
        name = flatbuffer.op_name(model, op)
        output = subgraph.tensors[op.outputs[0]]
        milliseconds = time_model(_single_op_model(model, index), threads, runs, warmup)
        rows.append(OpTime(index, name, output.name.decode(), group_of_tensor(output.name.decode()),
                           schema_types.get(output.type, str(output.type)), milliseconds))
        if progress is not None:
            progress(index + 1, len(subgraph.operators))
    return rows


def type_names():
    """The schema's `TensorType` class (name -> code)."""
    from keras_squeezetime.tflite import compat

    return compat.schema().TensorType


def totals(rows: list[OpTime], key: str) -> dict[str, tuple[int, float]]:
    """`{value of key: (ops, milliseconds)}` over rows, largest time first."""
    sums: dict[str, list] = {}
    for row in rows:
        entry = sums.setdefault(getattr(row, key), [0, 0.0])
        entry[0] += 1
        entry[1] += row.median_ms
    return {k: (v[0], v[1]) for k, v in sorted(sums.items(), key=lambda kv: -kv[1][1])}
