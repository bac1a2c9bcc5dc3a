"""Where a LiteRT model's time goes: per stage and per op, measured by cutting the graph.

The Python LiteRT packages expose no op profiler (TFLite's `benchmark_model
--enable_op_profiling` is a C++ binary), so parts of the graph are cut out into models of
their own (their constant inputs with them, their other inputs fed random data of their
dtype) and timed in the interpreter with XNNPACK and the model's thread count:

- `group_times`: each stage (`stem`, `stage1`..`stage4`, `head`, and `io` for the input
  and output conversions) as one contiguous slice of ops, so XNNPACK fuses what it fuses
  in the whole model; the slices add up to the whole model's time within a few percent.
- `profile`: every op alone. XNNPACK fuses some neighbours, which an op alone cannot
  show: on the int8 stem, PAD + CONV_2D took 1.35 ms, the CONV_2D alone 1.41 ms, the PAD
  alone 0.82 ms; the input's DEQUANTIZE + QUANTIZE 0.30 ms, alone 0.63 + 0.57 ms. Read
  the per-op table for the heavy ops, the per-stage one for where the time goes.

`python benchmarks/tflite_op_profile.py model.tflite` prints both.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time

import numpy as np

from keras_squeezetime.tflite import flatbuffer
from keras_squeezetime.tflite.fused_names import op_paths


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
    return slice_model(flatbuffer.read(model_bytes), index, index + 1)


def slice_model(model, start: int, stop: int) -> bytes:
    """Operators `start:stop` of subgraph 0 of an unpacked model (left unchanged) as a model.

    Its inputs are the tensors the slice reads but neither makes nor holds as constants;
    its outputs are the last operator's outputs.
    """
    from keras_squeezetime.tflite import compat

    schema = compat.schema()
    source = model.subgraphs[0]
    ops = [copy.copy(op) for op in source.operators[start:stop]]
    made = {t for op in ops for t in op.outputs}
    order = list(dict.fromkeys(t for op in ops for t in [*op.inputs, *op.outputs,
                                                         *(op.intermediates or [])] if t >= 0))
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
    for op in ops:
        op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [remap[i] for i in op.outputs]
        if op.intermediates:
            op.intermediates = [remap[i] for i in op.intermediates]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, ops
    subgraph.inputs = sorted({i for op in ops for i in op.inputs
                              if i >= 0 and not tensors[i].buffer and order[i] not in made})
    subgraph.outputs = list(ops[-1].outputs)
    sliced = schema.ModelT()
    sliced.version, sliced.operatorCodes = model.version, model.operatorCodes
    sliced.subgraphs, sliced.buffers = [subgraph], buffers
    return flatbuffer.write(sliced)


def group_runs(model) -> list[tuple[str, int, int]]:
    """`(group, start, stop)`: the contiguous runs of operators of one layer group, in order."""
    subgraph = model.subgraphs[0]
    groups = [group_of_tensor(subgraph.tensors[op.outputs[0]].name.decode())
              for op in subgraph.operators]
    runs, start = [], 0
    for index in range(1, len(groups) + 1):
        if index == len(groups) or groups[index] != groups[start]:
            runs.append((groups[start], start, index))
            start = index
    return runs


def group_times(model_bytes: bytes, threads: int = 2, runs: int = 20,
                warmup: int = 3) -> dict[str, float]:
    """`{group: median milliseconds}`, each group's contiguous slices timed whole, in model
    order (a group split into several runs of ops sums them)."""
    model = flatbuffer.read(model_bytes)
    times: dict[str, float] = {}
    for group, start, stop in group_runs(model):
        milliseconds = time_model(slice_model(model, start, stop), threads, runs, warmup)
        times[group] = times.get(group, 0.0) + milliseconds
    return times


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
    and the first that names a layer decides (of those that locate the op, `op_paths`).
    """
    from keras_squeezetime.architecture import layer_group

    for path in op_paths(name):
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
        milliseconds = time_model(slice_model(model, index, index + 1), threads, runs, warmup)
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
