"""The graph an int8 export quantises, rebuilt in Keras ops with int8 rounding simulated.

The input is the calibrated float LiteRT model (the converter's output after calibration,
`export.calibrated_model`: BN-folded, every tensor carrying its calibrated min/max). Each op
is recomputed with `keras.ops` (`QuantizedGraph`), and each tensor LiteRT's int8 kernels
round goes through `keras.quantizers.fake_quant_with_min_max_vars` where and as they round
it: activations per tensor over their calibrated range, convolution and dense kernels per
output channel (symmetric, narrow range), added constant maps per tensor, sigmoid and
softmax outputs at the fixed 1/256 step. Computed in float it is the float graph (to float
rounding); quantised it follows the int8 model's rounding grid (individual values differ
where kernels round ties or requantise in fixed point). Used to fine-tune the weights
(`qat`), to choose activation ranges (`activation_ranges`) and to rank where int8 rounding
costs most (`int8_agreement`); the shipped numbers always come from the real interpreter.

Ops rebuilt: the builtin set a SqueezeTime export uses (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, ADD, MUL, LOGISTIC, MEAN, MAX_POOL_2D, PAD, RESHAPE, STRIDED_SLICE,
TRANSPOSE, SOFTMAX); another op raises, naming it. The graph takes pixel clips
`(N, T, S, S, 3)` whatever its input layout (a stacked graph's are packed first, as
`input_layout.pack` does). The flatbuffer is read through `flatbuffer` and the calibrated
ranges through `compat` (their format is the converter's, not a public one).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_squeezetime.tflite import compat, flatbuffer, input_layout

# Ops whose int8 output takes its input's scale: no rounding of their own.
_SAME_SCALE = {"RESHAPE", "STRIDED_SLICE", "TRANSPOSE", "PAD", "MAX_POOL_2D"}
# int8 LOGISTIC/SOFTMAX outputs have a fixed scale 1/256, zero point -128.
_FIXED_RANGE = {"LOGISTIC": (0.0, 255.0 / 256.0), "SOFTMAX": (0.0, 255.0 / 256.0)}
# Weighted ops: (kernel input, bias input, output-channel axis of the kernel).
_WEIGHTED = {"CONV_2D": (1, 2, 0), "DEPTHWISE_CONV_2D": (1, 2, 3), "FULLY_CONNECTED": (1, 2, 0)}
_SUPPORTED = {*_SAME_SCALE, *_FIXED_RANGE, *_WEIGHTED, "ADD", "MUL", "MEAN"}
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}


@dataclasses.dataclass
class _Op:
    name: str
    inputs: list[int]
    outputs: list[int]
    options: object


@dataclasses.dataclass
class GraphSpec:
    """The calibrated float graph, read once: ops in execution order, constants, ranges."""

    ops: list[_Op]
    constants: dict[int, np.ndarray]
    ranges: dict[int, tuple[float, float]]
    input_index: int
    logits_index: int
    trainable: list[int]  # float constants that are weights: kernels, biases, added maps
    kernels: dict[int, int]  # kernel tensor -> its output-channel axis
    biases: set[int]
    names: dict[int, str]  # tensor index -> name
    input_layout: str = input_layout.FRAMES  # "stacked": a (N, S, S, 3T) input tensor

    def rounded_tensors(self) -> list[int]:
        """Op outputs int8 rounds (not those taking their input's scale), in graph order."""
        return [op.outputs[0] for op in self.ops if op.name not in _SAME_SCALE]


def read_graph(calibrated: bytes, logits_name: str = "logits") -> GraphSpec:
    """Parses a calibrated float model (from `export.calibrated_model`).

    Raises:
      ValueError: an op this module cannot rebuild, a missing logits output or range.
    """
    model = flatbuffer.read(calibrated)
    if len(model.subgraphs) != 1:
        raise ValueError(f"Expected one subgraph; the model has {len(model.subgraphs)}.")
    subgraph = model.subgraphs[0]
    dtypes = {flatbuffer.tensor_type(name): dtype for name, dtype in
              (("FLOAT32", np.float32), ("INT32", np.int32), ("INT64", np.int64))}
    constants, ranges = {}, {}
    for index, tensor in enumerate(subgraph.tensors):
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data):
            constants[index] = np.frombuffer(bytes(data), dtypes[tensor.type]).reshape(
                tensor.shape if len(tensor.shape) else ())
        measured = compat.calibrated_range(tensor)
        if measured is not None:
            ranges[index] = measured
    ops, trainable, kernels, biases = [], [], {}, set()
    for op in subgraph.operators:
        name = flatbuffer.op_name(model, op)
        if name not in _SUPPORTED:
            raise ValueError(f"Op {name} cannot be simulated (supported: {sorted(_SUPPORTED)}).")
        inputs = [int(i) for i in op.inputs]
        ops.append(_Op(name, inputs, [int(i) for i in op.outputs], op.builtinOptions))
        if name in _WEIGHTED:
            kernel, bias, axis = _WEIGHTED[name]
            kernels[inputs[kernel]] = axis
            if len(inputs) > bias and inputs[bias] >= 0:
                biases.add(inputs[bias])
        for index in inputs:
            if (index in constants and constants[index].dtype == np.float32
                    and index not in trainable):
                trainable.append(index)
    outputs = flatbuffer.signature_outputs(model)
    if logits_name not in outputs:
        raise ValueError(f"The model has no '{logits_name}' output (has {sorted(outputs)}).")
    missing = [subgraph.tensors[o].name.decode() for op in ops if op.name not in _SAME_SCALE
               and op.name not in _FIXED_RANGE for o in op.outputs if o not in ranges]
    if missing:
        raise ValueError(f"Tensors without calibrated range: {missing[:5]}; calibrate first.")
    names = {i: t.name.decode() for i, t in enumerate(subgraph.tensors)}
    input_index = int(subgraph.inputs[0])
    layout = input_layout.layout_of_shape(subgraph.tensors[input_index].shape)
    return GraphSpec(ops, constants, ranges, input_index, outputs[logits_name],
                     trainable, kernels, biases, names, layout)


def write_weights(calibrated: bytes, weights: dict[int, np.ndarray]) -> bytes:
    """`calibrated` with the float constants `weights` (tensor index -> value) replaced."""
    model = flatbuffer.read(calibrated)
    tensors = model.subgraphs[0].tensors
    for index, value in weights.items():
        buffer = model.buffers[tensors[index].buffer]
        old = np.frombuffer(bytes(buffer.data), np.float32)
        if old.size != value.size:
            raise ValueError(f"Tensor {tensors[index].name.decode()}: {value.size} values for "
                             f"{old.size}.")
        buffer.data = np.ascontiguousarray(value, np.float32).tobytes()
    return flatbuffer.write(model)


def write_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """`calibrated` with the calibrated min/max of tensors (index -> (min, max)) replaced."""
    model = flatbuffer.read(calibrated)
    tensors = model.subgraphs[0].tensors
    for index, (low, high) in ranges.items():
        compat.set_calibrated_range(tensors[index], low, high)
    return flatbuffer.write(model)


def quantized_graph_class():
    """The `QuantizedGraph` Keras layer class (Keras imported on first use)."""
    import keras
    from keras import ops

    class QuantizedGraph(keras.layers.Layer):
        """A calibrated LiteRT float graph as a Keras layer, int8 rounding simulated.

        Each weight is `initial + step * delta` with `step` its initial RMS (per tensor),
        so one learning rate suits the stem's 1e-5 kernels and the head's 1e-1 ones.
        `quantize=False` computes the float graph (the distillation teacher).
        """

        def __init__(self, spec: GraphSpec, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec
            self.deltas = {}

        def build(self, input_shape):
            for index in self.spec.trainable:
                value = self.spec.constants[index]
                self.deltas[index] = self.add_weight(
                    name=f"delta_{index}", shape=value.shape, initializer="zeros")
            self._steps = {i: float(np.sqrt(np.mean(np.square(self.spec.constants[i]))) or 1.0)
                           for i in self.spec.trainable}

        def weight(self, index):
            base = ops.convert_to_tensor(self.spec.constants[index])
            if index in self.deltas:
                return base + self._steps[index] * self.deltas[index]
            return base

        def _quantized_weight(self, index):
            w = self.weight(index)
            if index in self.spec.biases:
                return w  # int32 at input_scale * weight_scale: no visible rounding
            if index in self.spec.kernels:
                axis = self.spec.kernels[index]
                reduce = tuple(a for a in range(len(w.shape)) if a != axis)
                bound = ops.maximum(ops.stop_gradient(ops.max(ops.abs(w), axis=reduce)), 1e-12)
                return keras.quantizers.fake_quant_with_min_max_vars(
                    w, -bound, bound, num_bits=8, narrow_range=True, axis=axis)
            # Other constants (added maps): per tensor, asymmetric, like activations.
            low = ops.minimum(ops.stop_gradient(ops.min(w)), 0.0)
            high = ops.maximum(ops.stop_gradient(ops.max(w)), 0.0)
            return keras.quantizers.fake_quant_with_min_max_vars(w, low, high, num_bits=8)

        def call(self, inputs, quantize=True):
            return self.run(inputs, quantize)[self.spec.logits_index]

        def run(self, inputs, quantize=True, skip=frozenset(), rounded=None,
                channel_ranges=None, num_bits=8):
            """Every tensor's value `{index: tensor}`; tensors in `skip` are not rounded.

            `rounded` (`{index: 0. or 1. scalar tensor}`) switches rounding per tensor
            at run time, so one traced function serves every choice. `channel_ranges`
            (`{index: (low, high)}`, arrays over the last axis) rounds those tensors with
            a range per channel, and `num_bits` sets the activations' levels: bounds of
            what LiteRT's per-tensor int8 could reach, not anything it runs.
            """
            spec = self.spec
            values = {spec.input_index: _model_input(ops.cast(inputs, "float32"), spec)}

            def read(index):
                if index in values:
                    return values[index]
                if index in spec.trainable:
                    return self._quantized_weight(index) if quantize else self.weight(index)
                return spec.constants[index]

            for op in spec.ops:
                out = _run_op(op, [read(i) if i >= 0 else None for i in op.inputs], spec)
                if quantize and op.name not in _SAME_SCALE and op.outputs[0] not in skip:
                    fake = _fake_quant(out, op, spec, channel_ranges or {}, num_bits)
                    switch = None if rounded is None else rounded.get(op.outputs[0])
                    out = fake if switch is None else out + switch * (fake - out)
                values[op.outputs[0]] = out
            return values

        def weights_by_tensor(self) -> dict[int, np.ndarray]:
            return {i: np.asarray(self.weight(i)) for i in self.spec.trainable}

    return QuantizedGraph


def _fake_quant(value, op: _Op, spec: GraphSpec, channel_ranges: dict, num_bits: int):
    """`value` (op's output) rounded as int8 activations are: asymmetric, zero on the grid."""
    import keras

    index = op.outputs[0]
    if index in channel_ranges and op.name not in _FIXED_RANGE:
        low, high = (np.asarray(bound, np.float32) for bound in channel_ranges[index])
        low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)
        high = np.maximum(high, low + 1e-6)  # a dead channel still needs a step
        return keras.quantizers.fake_quant_with_min_max_vars(
            value, low, high, num_bits=num_bits, axis=-1)
    low, high = _FIXED_RANGE.get(op.name) or spec.ranges[index]
    return keras.quantizers.fake_quant_with_min_max_vars(
        value, min(low, 0.0), max(high, 0.0), num_bits=num_bits)


def _model_input(clips, spec: GraphSpec):
    """Pixel clips `(N, T, S, S, 3)` as the graph's input tensor (`input_layout.pack`)."""
    from keras import ops

    if spec.input_layout == input_layout.FRAMES or len(clips.shape) == 4:
        return clips
    _, frames, height, width, channels = clips.shape
    moved = ops.transpose(clips, (0, 2, 3, 1, 4))  # (N, S, S, T, 3): frame t at 3t..3t+2
    return ops.reshape(moved, (-1, height, width, frames * channels))


def _run_op(op: _Op, inputs: list, spec: GraphSpec):
    from keras import ops

    o = op.options
    name = op.name
    if name == "CONV_2D":
        kernel = ops.transpose(inputs[1], (1, 2, 3, 0))  # OHWI -> HWIO
        out = ops.conv(inputs[0], kernel, strides=(o.strideH, o.strideW),
                       padding=_padding(o.padding),
                       dilation_rate=(o.dilationHFactor, o.dilationWFactor))
        out = out if len(inputs) < 3 or inputs[2] is None else out + inputs[2]
        return _activation(out, o.fusedActivationFunction)
    if name == "DEPTHWISE_CONV_2D":
        kernel = inputs[1][0]  # (1, H, W, C*M) -> (H, W, C*M)
        channels = inputs[0].shape[-1]
        kernel = ops.reshape(kernel, (*kernel.shape[:2], channels, o.depthMultiplier))
        out = ops.depthwise_conv(inputs[0], kernel, strides=(o.strideH, o.strideW),
                                 padding=_padding(o.padding),
                                 dilation_rate=(o.dilationHFactor, o.dilationWFactor))
        out = out if len(inputs) < 3 or inputs[2] is None else out + inputs[2]
        return _activation(out, o.fusedActivationFunction)
    if name == "FULLY_CONNECTED":
        x = inputs[0]
        if o.keepNumDims:
            raise ValueError("FULLY_CONNECTED with keep_num_dims is not supported.")
        x = ops.reshape(x, (-1, inputs[1].shape[-1]))
        out = ops.matmul(x, ops.transpose(inputs[1]))
        out = out if len(inputs) < 3 or inputs[2] is None else out + inputs[2]
        return _activation(out, o.fusedActivationFunction)
    if name == "ADD":
        return _activation(inputs[0] + inputs[1], o.fusedActivationFunction)
    if name == "MUL":
        return _activation(inputs[0] * inputs[1], o.fusedActivationFunction)
    if name == "LOGISTIC":
        return ops.sigmoid(inputs[0])
    if name == "SOFTMAX":
        return ops.softmax(inputs[0] * o.beta, axis=-1)
    if name == "MEAN":
        axes = tuple(int(a) for a in np.ravel(spec.constants[op.inputs[1]]))
        return ops.mean(inputs[0], axis=axes, keepdims=bool(o.keepDims))
    if name == "MAX_POOL_2D":
        if o.fusedActivationFunction:
            raise ValueError("MAX_POOL_2D with a fused activation is not supported.")
        return ops.max_pool(inputs[0], (o.filterHeight, o.filterWidth), (o.strideH, o.strideW),
                            padding=_padding(o.padding))
    if name == "PAD":
        return ops.pad(inputs[0], np.asarray(spec.constants[op.inputs[1]]).tolist())
    if name == "RESHAPE":
        shape = [int(s) for s in np.ravel(spec.constants[op.inputs[1]])]
        return ops.reshape(inputs[0], (-1, *shape[1:]))  # batch 1 in the file, any here
    if name == "TRANSPOSE":
        perm = [int(p) for p in np.ravel(spec.constants[op.inputs[1]])]
        if perm[0] != 0:
            raise ValueError("TRANSPOSE moving the batch axis is not supported.")
        return ops.transpose(inputs[0], perm)
    if name == "STRIDED_SLICE":
        begin, end, strides = (np.ravel(spec.constants[i]) for i in op.inputs[1:4])
        if o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask:
            raise ValueError("STRIDED_SLICE with ellipsis/new-axis/shrink masks is not supported.")
        slices = [slice(None)]  # the batch axis is whole
        for axis in range(1, len(begin)):
            start = None if o.beginMask >> axis & 1 else int(begin[axis])
            stop = None if o.endMask >> axis & 1 else int(end[axis])
            slices.append(slice(start, stop, int(strides[axis])))
        return inputs[0][tuple(slices)]
    raise ValueError(f"Op {name} is not supported.")


def _padding(code: int) -> str:
    return {0: "same", 1: "valid"}[int(code)]


def _activation(x, code: int):
    from keras import ops

    kind = _ACTIVATIONS.get(int(code), "unsupported")
    if kind == "unsupported":
        raise ValueError(f"Fused activation {code} is not supported.")
    if kind == "relu":
        return ops.relu(x)
    if kind == "relu6":
        return ops.relu6(x)
    return x
