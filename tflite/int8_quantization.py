"""Full-integer int8 conversion: calibrate once, then quantise, chosen ops left in float.

The production int8 path of `export_tflite`. Uses the converter's calibration
(`_experimental_calibrate_only`) and the MLIR quantiser with `denylisted_nodes`, the
mechanism of TFLite's quantisation debugger (`tf.lite.experimental.QuantizationDebugger`):
ops whose output tensor name contains a denied Keras layer path stay float, with
quantize/dequantize around them (the selective fallback, `--float-layers`). Which layers
int8 hurts is diagnosed by `quantization_debugger.layer_errors`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from keras_squeezetime.tflite import compat, flatbuffer, fused_names


def calibrate(converter, clips: np.ndarray, dtype) -> bytes:
    """The float model with calibration statistics, from a converter set up for int8."""
    return compat.calibrate_only(
        converter, lambda: ([clip[None].astype(dtype)] for clip in clips))


def tensor_names(model_bytes: bytes) -> list[str]:
    """Names of every tensor of the (calibrated) model."""
    return flatbuffer.tensor_names(flatbuffer.read(model_bytes))


def denied_nodes(model_bytes: bytes, float_layers: Sequence[str]) -> list[str]:
    """Tensor names under any of the Keras layer paths `float_layers`.

    A path is layer names from the model down, e.g. `stage1_block1/ctl/ioi/gate_conv3`,
    or just `ioi/gate_conv3` for that layer in every block; its first name may be a
    group prefix ending before an underscore: `stage1` is every stage-1 block, `stem` the
    stem convolution and bias.

    Raises:
      ValueError: a layer path matches no tensor (a typo would silently keep it int8).
    """
    names = tensor_names(model_bytes)
    denied, unmatched = set(), []
    for layer in float_layers:
        hits = [n for n in names if _matches(n, layer)]
        if not hits:
            unmatched.append(layer)
        denied.update(hits)
    if unmatched:
        raise ValueError(f"float_layers {unmatched} match no tensor of the model.")
    return sorted(denied)


def pin_input_range(calibrated: bytes, low: float = 0.0, high: float = 255.0) -> bytes:
    """Sets the calibrated range of the model inputs to `[low, high]`.

    With `[0, 255]`, a uint8 input quantises with scale 1 and zero point 0: the raw pixel
    bytes are the quantised values, exactly, and no float cast is needed in the model.
    """
    model = flatbuffer.read(calibrated)
    for subgraph in model.subgraphs:
        for index in subgraph.inputs:
            tensor = subgraph.tensors[index]
            if compat.calibrated_range(tensor) is None:
                raise ValueError("The calibrated model holds no input range to pin.")
            compat.set_calibrated_range(tensor, low, high)
    return flatbuffer.write(model)


def quantize(
    calibrated: bytes,
    float_layers: Sequence[str] = (),
    input_type: str = "float32",
    integer_output: bool = False,
    denied_tensors: Sequence[str] = (),
) -> bytes:
    """Full-integer model from `calibrated`, with `float_layers` kept float.

    `input_type="uint8"` expects a model calibrated with a float32 input of pixels in
    [0, 255]; the input is pinned to that range and declared uint8. `denied_tensors` keeps
    ops float by exact output tensor name, besides the layer paths of `float_layers`.
    """
    import tensorflow as tf

    nodes = denied_nodes(calibrated, float_layers) if float_layers else []
    nodes = sorted(set(nodes) | set(denied_tensors)) or None
    if input_type == "uint8":
        calibrated = pin_input_range(calibrated)
    return compat.mlir_quantize(
        calibrated,
        input_data_type=tf.uint8 if input_type == "uint8" else tf.float32,
        output_data_type=tf.int8 if integer_output else tf.float32,
        denylisted_nodes=nodes,
    )


def _matches(tensor: str, layer: str) -> bool:
    # Tensor names follow the Keras call path, e.g. ".../stage1_block1_1/ctl_1/ioi_1/...":
    # compare path components with the "_1" call suffixes stripped, over the paths that
    # locate the op (`fused_names.op_paths`: not a merged constant's name from elsewhere).
    # The first component may also name a group: "stage1" covers stage1_block1..3 and
    # "stem" covers stem_conv and stem_bias.
    first, *rest = layer.strip("/").split("/")
    for path in fused_names.op_paths(tensor):
        parts = [p.rsplit("_", 1)[0] if p.rsplit("_", 1)[-1].isdigit() else p
                 for p in path.split("/")]
        if any((parts[i] == first or parts[i].startswith(first + "_"))
               and parts[i + 1 : i + 1 + len(rest)] == rest
               for i in range(len(parts) - len(rest))):
            return True
    return False
