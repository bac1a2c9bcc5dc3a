"""Selective int8: calibrate once, then quantise with chosen ops left in float.

Uses the converter's calibration (`_experimental_calibrate_only`) and the MLIR quantiser
with `denylisted_nodes`, the mechanism of TFLite's quantisation debugger
(`tf.lite.experimental.QuantizationDebugger`): ops whose output tensor name contains a
denied Keras layer path stay float, with quantize/dequantize around them. `layer_errors`
runs the debugger's per-layer numeric verification to find which layers int8 hurts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def calibrate(converter, clips: np.ndarray, dtype) -> bytes:
    """The float model with calibration statistics, from a converter set up for int8."""
    converter._experimental_calibrate_only = True  # public debugger API does the same
    converter.representative_dataset = lambda: ([clip[None].astype(dtype)] for clip in clips)
    return converter.convert()


def tensor_names(flatbuffer: bytes) -> list[str]:
    """Names of every tensor of the (calibrated) model."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    return [t.name.decode() for sg in model.subgraphs for t in sg.tensors]


def denied_nodes(flatbuffer: bytes, float_layers: Sequence[str]) -> list[str]:
    """Tensor names under any of the Keras layer paths `float_layers`.

    A path is layer names from the model down, e.g. `stage1_block1/ctl/ioi/gate_conv3`,
    or just `ioi/gate_conv3` for that layer in every block; its first name may be a
    group prefix ending before an underscore: `stage1` is every stage-1 block, `stem` the
    stem convolution and bias.

    Raises:
      ValueError: a layer path matches no tensor (a typo would silently keep it int8).
    """
    names = tensor_names(flatbuffer)
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
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    for subgraph in model.subgraphs:
        for index in subgraph.inputs:
            quantization = subgraph.tensors[index].quantization
            if quantization is None or quantization.min is None:
                raise ValueError("The calibrated model holds no input range to pin.")
            quantization.min = np.asarray([low], dtype=np.float32)
            quantization.max = np.asarray([high], dtype=np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize(
    calibrated: bytes,
    float_layers: Sequence[str] = (),
    input_type: str = "float32",
    integer_output: bool = False,
) -> bytes:
    """Full-integer model from `calibrated`, with `float_layers` kept float.

    `input_type="uint8"` expects a model calibrated with a float32 input of pixels in
    [0, 255]; the input is pinned to that range and declared uint8.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert

    nodes = denied_nodes(calibrated, float_layers) if float_layers else None
    if input_type == "uint8":
        calibrated = pin_input_range(calibrated)
    return convert.mlir_quantize(
        calibrated,
        input_data_type=tf.uint8 if input_type == "uint8" else tf.float32,
        output_data_type=tf.int8 if integer_output else tf.float32,
        denylisted_nodes=nodes,
    )


def full_integer_model(converter, clips, float_layers=(), input_type="float32",
                       integer_output=False) -> bytes:
    """`quantize(calibrate(...))`: the int8 conversion of `export_tflite`."""
    calibrated = calibrate(converter, clips, np.float32)
    return quantize(calibrated, float_layers, input_type, integer_output)


def layer_errors(calibrated: bytes, clips: np.ndarray, dtype) -> dict[str, dict[str, float]]:
    """Per-tensor int8 error from the quantisation debugger, worst first.

    For each quantised op output: `rmse/scale` (error in units of its quantisation step;
    about 0.29 is pure rounding), `mean_squared_error` and `range` (float min/max spread).
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert

    debug_model = convert.mlir_quantize(calibrated, enable_numeric_verify=True)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics={"mean_abs_error": lambda diff: float(np.mean(np.abs(diff)))}
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model,
        debug_dataset=lambda: ([clip[None].astype(dtype)] for clip in clips),
        debug_options=options,
    )
    debugger.run()
    rows = {}
    for name, stats in debugger.layer_statistics.items():
        scale = _scale_of(debugger, name)
        rows[name] = {
            "rmse/scale": float(np.sqrt(stats["mean_squared_error"]) / scale) if scale else 0.0,
            "mean_squared_error": float(stats["mean_squared_error"]),
            "mean_abs_error": float(stats["mean_abs_error"]),
        }
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["rmse/scale"]))


def _scale_of(debugger, name: str) -> float:
    for detail in debugger._quant_interpreter.get_tensor_details():
        if detail["name"] == name:
            return float(detail["quantization_parameters"]["scales"][0] or 0.0)
    return 0.0


def _matches(tensor: str, layer: str) -> bool:
    # Tensor names follow the Keras call path, e.g. ".../stage1_block1_1/ctl_1/ioi_1/...":
    # compare path components with the "_1" call suffixes stripped.
    # The first component may also name a group: "stage1" covers stage1_block1..3 and
    # "stem" covers stem_conv and stem_bias.
    parts = [p.rsplit("_", 1)[0] if p.rsplit("_", 1)[-1].isdigit() else p for p in tensor.split("/")]
    first, *rest = layer.strip("/").split("/")
    return any(
        (parts[i] == first or parts[i].startswith(first + "_"))
        and parts[i + 1 : i + 1 + len(rest)] == rest
        for i in range(len(parts) - len(rest))
    )
