"""Every private TensorFlow / LiteRT call of the LiteRT floor, in one place.

The int8 route, the flatbuffer rewrites and the harness rely on APIs that are not public
(attributes with a leading underscore, modules outside `tf.lite`'s exported surface) and
may change in any release. They are wrapped here, with the versions they were written
and tested for; importing this module warns when the installed versions differ, and
`tests/tflite/test_compat.py` exercises each call so an upgrade that breaks one fails
loudly there rather than deep inside an export.

TensorFlow is imported lazily (only by the functions that convert); reading and running
`.tflite` files needs only `ai_edge_litert`.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from types import ModuleType
from typing import Callable, Iterable

import numpy as np

# Distribution -> the release series this module was written and tested for.
TESTED_VERSIONS = {"tensorflow": "2.21", "ai-edge-litert": "2.3"}

# XNNPACK delegate flag (xnnpack_delegate.h, TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16):
# run float operators in fp16 whatever the model's metadata says (emulated on x86 CPUs).
XNNPACK_FLAG_FORCE_FP16 = 0x4

# The converter's metadata key and value for "fp16 inference with fp16 accumulation",
# which makes XNNPACK compute in fp16 on CPUs with native fp16 arithmetic
# (tensorflow/compiler/mlir/lite/tools/optimize/reduced_precision_metadata.h).
REDUCED_PRECISION_KEY = "reduced_precision_support"
FP16_ACCUMULATION_VALUE = "fp16accfp16"


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def untested_versions() -> dict[str, str]:
    """`{distribution: installed version}` for those outside `TESTED_VERSIONS`."""
    found = {}
    for distribution, series in TESTED_VERSIONS.items():
        version = installed_version(distribution)
        if version is not None and not (version == series or version.startswith(series + ".")):
            found[distribution] = version
    return found


def _warn_untested() -> None:
    untested = untested_versions()
    if untested:
        warnings.warn(
            "keras_squeezetime.tflite uses private TensorFlow/LiteRT APIs tested with "
            f"{TESTED_VERSIONS}; installed {untested}. Run tests/tflite/test_compat.py.",
            RuntimeWarning,
            stacklevel=3,
        )


_warn_untested()


# --- flatbuffer schema -------------------------------------------------------------------


def schema() -> ModuleType:
    """The generated LiteRT flatbuffer schema module (object API: `ModelT`, `TensorT`, ...)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def flatbuffer_utils() -> ModuleType:
    """LiteRT's flatbuffer helpers (read/write a `ModelT`, opcode names)."""
    from ai_edge_litert.tools import flatbuffer_utils as utils

    return utils


# --- converter ---------------------------------------------------------------------------


def calibrate_only(converter, dataset: Callable[[], Iterable[list[np.ndarray]]]) -> bytes:
    """The float model with calibration statistics, from a converter set up for int8.

    `_experimental_calibrate_only` is what `tf.lite.experimental.QuantizationDebugger`
    itself sets; the public API has no "calibrate, quantise later" route.
    """
    converter._experimental_calibrate_only = True
    converter.representative_dataset = dataset
    return converter.convert()


def mlir_quantize(calibrated: bytes, **options) -> bytes:
    """`tensorflow.lite.python.convert.mlir_quantize`: quantises a calibrated model.

    `options` are that function's keyword arguments (`input_data_type`,
    `output_data_type`, `denylisted_nodes`, `enable_numeric_verify`, ...).
    """
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(calibrated, **options)


def calibrated_range(tensor) -> tuple[float, float] | None:
    """The `(min, max)` calibration recorded for a tensor (`TensorT`) of a calibrated model.

    `calibrate_only` leaves each measured range in the tensor's
    `QuantizationParameters.min/max` (one entry, per tensor), and `mlir_quantize` derives
    the int8 scale and zero point from them; neither is a documented format. None for a
    tensor without a range.
    """
    quantization = tensor.quantization
    if quantization is None or quantization.min is None or not len(quantization.min):
        return None
    return float(quantization.min[0]), float(quantization.max[0])


def set_calibrated_range(tensor, low: float, high: float) -> None:
    """Replaces a calibrated tensor's range; `mlir_quantize` then quantises over it.

    Raises:
      ValueError: the tensor has no calibrated range (the name says which).
    """
    if calibrated_range(tensor) is None:
        raise ValueError(f"Tensor {tensor.name.decode()} has no calibrated range.")
    tensor.quantization.min = np.asarray([low], dtype=np.float32)
    tensor.quantization.max = np.asarray([high], dtype=np.float32)


def converter_error() -> type[Exception]:
    """The exception class the converter raises (e.g. for ops that would need Flex)."""
    from tensorflow.lite.python.convert import ConverterError

    return ConverterError


def request_fp16_accumulation(converter) -> None:
    """Makes a float16 conversion record fp16 accumulation in the model's metadata.

    Sets `target_spec._experimental_supported_accumulation_type = tf.float16` (the
    attribute the XNNPACK delegate documentation names); with
    `supported_types=[tf.float16]` the converter then writes
    `reduced_precision_support = "fp16accfp16"`, which tells XNNPACK it may run the
    model in fp16 on hardware with native fp16 arithmetic (ARMv8.2-A and later).
    """
    import tensorflow as tf

    converter.target_spec._experimental_supported_accumulation_type = tf.float16


def debugger_tensor_scales(debugger) -> dict[str, float]:
    """`{tensor name: first quantisation scale}` of a `QuantizationDebugger`'s int8 model.

    The debugger keeps its quantised interpreter private (`_quant_interpreter`); its
    public statistics give errors but not the scales to express them in steps.
    """
    scales = {}
    for detail in debugger._quant_interpreter.get_tensor_details():
        values = detail["quantization_parameters"]["scales"]
        scales[detail["name"]] = float(values[0]) if len(values) else 0.0
    return scales


# --- interpreter -------------------------------------------------------------------------


def ops_details(interpreter) -> list[dict]:
    """The interpreter's execution plan: one dict per node (`op_name`, `inputs`, `outputs`, ...).

    `Interpreter._get_ops_details` is the only API listing nodes, delegate nodes included.
    """
    return interpreter._get_ops_details()
