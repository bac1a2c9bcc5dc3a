"""Keras SqueezeTime -> LiteRT flatbuffer: float32, float16, dynamic-range or full-integer int8.

The exported graph has batch 1 and one signature, `serving_default`, taking `video` (RGB
pixels in [0, 255], float32 or uint8; normalisation is inside the model, put back into
one built with `include_preprocessing=False`) as `(1, T, S, S, 3)` clips (`frames`
layout) or `(1, S, S, 3T)` stacked frames (`stacked` layout, rank 4 throughout, for
GPU/NPU accelerators; see `input_layout`), and returning `probabilities` and `logits`
(float32 unless integer outputs are asked).
Only builtin LiteRT ops are allowed: an op that would need the Flex delegate (full
TensorFlow, absent from the phone runtime) fails the export, named.

Conversion starts from the serving function traced once with the variables frozen into it
(`TFLiteConverter.from_concrete_functions` without lowering to a SavedModel: about a sixth
of the SavedModel route's time, same ops, see `benchmarks/export_route.py`); the signature
is written into the flatbuffer afterwards. The converter leaks memory on every call in TF
2.20/2.21: convert many variants in separate processes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from typing import Callable, Iterable, Sequence

import numpy as np

# The signature's names, re-exported: `export.OUTPUT_NAME` etc. keep working.
from keras_squeezetime.tflite.signature import (  # noqa: F401
    INPUT_NAME,
    LOGITS_NAME,
    OUTPUT_NAME,
    SIGNATURE_KEY,
)

QUANTIZATIONS = ("float32", "float16", "float16-compute", "dynamic", "int8")
INPUT_TYPES = ("float32", "uint8")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_tflite` wrote.

    Attributes:
      path: the `.tflite` file.
      quantization: one of `QUANTIZATIONS`.
      input_type: "float32" or "uint8".
      input_shape: the input tensor, `(1, T, S, S, 3)` or, stacked, `(1, S, S, 3T)`.
      size_bytes: file size.
      ops: builtin op names and counts, e.g. `{"CONV_2D": 53, ...}`.
      float_ops: for int8, ops left computing in float (name and output tensor), because
        they could not be quantised or were kept float on purpose (`float_layers`).
      labels_path: the label file written beside the model, or None without labels.
      input_layout: "frames" or "stacked".
      int8_report: with `target_agreement`, what the search did and what it cost
        (`int8_agreement.AgreementReport.as_dict()`), else None.
    """

    path: str
    quantization: str
    input_type: str
    input_shape: tuple[int, ...]
    size_bytes: int
    ops: dict[str, int]
    float_ops: tuple[str, ...] = ()
    labels_path: str | None = None
    input_layout: str = "frames"
    int8_report: dict | None = None


class UnsupportedOpsError(RuntimeError):
    """The model needs ops outside the builtin LiteRT set (they would need Flex)."""


def export_tflite(
    model,
    output: str | os.PathLike,
    quantization: str = "float32",
    input_type: str = "float32",
    representative_dataset: Iterable[np.ndarray] | np.ndarray | None = None,
    *,
    class_names: Sequence[str] | None = None,
    sampling: dict | None = None,
    integer_output: bool = False,
    float_layers: Sequence[str] = (),
    float_layers_weights: str = "int8",
    input_layout: str = "frames",
    target_agreement: float | None = None,
    agreement_dataset: Iterable[np.ndarray] | np.ndarray | None = None,
) -> ExportResult:
    """Converts a SqueezeTime classifier to a batch-1 LiteRT model at `output`.

    Args:
      model: a `keras_squeezetime.SqueezeTime` model with its head (`include_top=True`).
        One built with `include_preprocessing=False` is exported with the normalisation
        put back in front (`preprocessing.with_preprocessing`): every file takes pixels.
      output: path of the `.tflite` file (not an existing folder); written atomically
        (temp file, then rename), and the labels file after it, so a failed export leaves
        nothing behind.
      quantization: "float32", "float16" (weights in float16, float32 arithmetic),
        "float16-compute" (weights in float16, and the file allows fp16 arithmetic with
        fp16 accumulation: XNNPACK then computes in fp16 on CPUs that have it, ARMv8.2-A
        phones; elsewhere it is the float16 file), "dynamic" (int8 weights, float
        activations) or "int8" (full-integer, calibrated on `representative_dataset`).
      input_type: "float32" or "uint8" (raw RGB frames; the cast is inside the model).
      representative_dataset: for "int8": pixel clips `(T, S, S, 3)` (or `(1, T, S, S,
        3)`) in [0, 255], e.g. from `calibration.calibration_clips`, whatever the layout.
      class_names: labels, embedded in the file's metadata and written beside it.
      sampling: clip sampling the model expects (`frame_interval`, `short_side`, ...),
        embedded as metadata so evaluation samples clips the same way.
      integer_output: with "int8", integer (int8) `probabilities`/`logits` instead of float.
      float_layers: with "int8", Keras layer names (prefixes, e.g. `"stage1_block1/ctl"`)
        whose ops stay float: the selective fallback for layers int8 hurts.
      float_layers_weights: "int8" (default) stores those layers' convolution kernels as
        int8 (hybrid ops, see `hybrid_fallback`), so the file stays int8-sized; "float32"
        keeps them float.
      input_layout: "frames" (`(1, T, S, S, 3)`, the default) or "stacked" (`(1, S, S,
        3T)`, frame t's RGB at channels 3t..3t+2; no tensor of rank above 4).
      target_agreement: with "int8", the top-1 agreement with the float model to reach on
        held-out clips: the cheapest int8 model that does is exported (better activation
        ranges, then the fewest units kept float; see `int8_agreement`).
      agreement_dataset: the held-out pixel clips measuring it, whatever the layout; by
        default the last third of `representative_dataset` is held out of calibration for
        it. Clips the model was trained on agree more easily than new ones: prefer clips
        it never saw.

    Returns:
      An `ExportResult`.

    Raises:
      ValueError: bad arguments (e.g. `output` is a folder), a model without
        classification head, or no representative data for "int8".
      UnsupportedOpsError: an op would need Flex; the message names it.
      int8_agreement.AgreementNotReachedError: `target_agreement` was not reached (a
        ValueError naming the best agreement found); nothing is written.
    """
    from keras_squeezetime.preprocessing import with_preprocessing
    from keras_squeezetime.tflite import input_layout as layouts
    from keras_squeezetime.tflite import metadata, model_ops

    layouts.check_layout(input_layout)
    check_output_file(output, class_names is not None)
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}.")
    if input_type not in INPUT_TYPES:
        raise ValueError(f"input_type must be one of {INPUT_TYPES}; got {input_type!r}.")
    if float_layers_weights not in ("int8", "float32"):
        raise ValueError(f"float_layers_weights must be 'int8' or 'float32'; "
                         f"got {float_layers_weights!r}.")
    if quantization != "int8" and (integer_output or float_layers):
        raise ValueError("integer_output and float_layers apply to int8 quantization only.")
    if quantization == "int8" and representative_dataset is None:
        raise ValueError("int8 quantization needs representative_dataset (calibration clips).")
    if target_agreement is not None:
        check_target_agreement(target_agreement, quantization, float_layers)
    if class_names is not None and len(class_names) != _num_classes(model):
        raise ValueError(
            f"{len(class_names)} class names for a model with {_num_classes(model)} classes."
        )
    # Every file takes pixels (the tools and the phone guide feed them): a model built
    # with include_preprocessing=False gets its normalisation back.
    model = with_preprocessing(model)
    clip_shape = _clip_shape(model)
    clips = (_calibration_array(representative_dataset, (1, *clip_shape))
             if quantization == "int8" else None)
    held_out = None
    if target_agreement is not None:
        if agreement_dataset is not None:
            held_out = _calibration_array(agreement_dataset, (1, *clip_shape))
        else:
            split = len(clips) - len(clips) // 3
            clips, held_out = clips[:split], clips[split:]
    calibration = layouts.pack(clips, input_layout) if clips is not None else None
    input_shape = layouts.tensor_shape(clip_shape, input_layout)
    graph_model = layouts.stacked_model(model) if input_layout == layouts.STACKED else model

    output = os.path.abspath(os.fspath(output))
    os.makedirs(os.path.dirname(output), exist_ok=True)
    # int8 takes uint8 by quantising a float input (scale 1), not by a cast in the graph.
    graph = ServingGraph(graph_model, input_shape,
                         "float32" if quantization == "int8" else input_type)
    workdir = tempfile.mkdtemp(prefix=".export-", dir=os.path.dirname(output))
    try:
        int8_report = None
        if target_agreement is not None:
            model_bytes, int8_report = _agreeing_int8(
                graph, input_type, clips, calibration, held_out, integer_output,
                target_agreement)
        else:
            model_bytes = _convert(
                graph, quantization, input_type, calibration, integer_output, float_layers
            )
            model_bytes = finish_converted(
                model_bytes, bool(float_layers) and float_layers_weights == "int8", input_type)
        extra = {"quantization": quantization, "input_type": input_type,
                 "input_layout": input_layout,
                 "output_activation": _probabilities_activation(_head(model).activation),
                 **(sampling or {})}
        model_bytes = metadata.embed(model_bytes, class_names, extra)
        temp = os.path.join(workdir, "model.tflite")
        with open(temp, "wb") as handle:
            handle.write(model_bytes)
        # The model first: a labels file must never stand beside a model that failed.
        os.replace(temp, output)
        labels_path = None
        if class_names is not None:
            try:
                labels_path = metadata.write_labels_beside(output, class_names)
            except BaseException:
                os.remove(output)  # nor a model without its labels
                raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ops = model_ops.op_counts(model_bytes)
    return ExportResult(
        path=output,
        quantization=quantization,
        input_type=input_type,
        input_shape=input_shape,
        size_bytes=os.path.getsize(output),
        ops=ops,
        float_ops=model_ops.float_ops(model_bytes) if quantization == "int8" else (),
        labels_path=labels_path,
        input_layout=input_layout,
        int8_report=int8_report,
    )


def check_output_file(output: str | os.PathLike, labels: bool = True) -> None:
    """Raises ValueError when `output` cannot be the `.tflite` file written: an existing
    folder (or, with `labels`, its `.labels.txt` path is one). Checked before any work."""
    from keras_squeezetime.tflite import metadata

    output = os.fspath(output)
    if os.path.isdir(output):
        raise ValueError(f"Output {output} is an existing folder; name the .tflite file to "
                         f"write, e.g. {os.path.join(output, 'model.tflite')}.")
    labels_path = metadata.labels_path_for(output)
    if labels and os.path.isdir(labels_path):
        raise ValueError(f"The labels file {labels_path} of output {output} is an existing "
                         "folder; remove it or name another .tflite file.")


def check_target_agreement(target: float, quantization: str = "int8",
                           float_layers: Sequence[str] = ()) -> None:
    """Raises ValueError unless `target` is an agreement in (0, 1] asked of a plain int8 export.

    The search chooses the layers kept float, so it excludes `float_layers`.
    """
    if quantization != "int8" or float_layers:
        raise ValueError("target_agreement applies to int8 without float_layers (the search "
                         "chooses the layers kept float).")
    if not 0 < target <= 1:
        raise ValueError(f"target_agreement must be in (0, 1]; got {target}.")


def calibrated_model(model, clips: np.ndarray, input_layout: str = "frames") -> bytes:
    """The float graph `export_tflite` converts, with int8 calibration statistics on `clips`.

    What the int8 route quantises (`int8_quantization.quantize`) and what the
    quantisation debugger diagnoses (`quantization_debugger.layer_errors`). `clips` are
    pixel clips `(N, T, S, S, 3)` in [0, 255]; the model is used as given (fold it first
    to match an export).
    """
    from keras_squeezetime.tflite import input_layout as layouts

    clip_shape = _clip_shape(model)
    packed = layouts.pack(_calibration_array(clips, (1, *clip_shape)), input_layout)
    graph_model = layouts.stacked_model(model) if input_layout == layouts.STACKED else model
    graph = ServingGraph(graph_model, layouts.tensor_shape(clip_shape, input_layout), "float32")
    return graph.calibrated(packed)


def _head(model):
    from keras_squeezetime.layers import ClassificationHead

    heads = [layer for layer in model.layers if isinstance(layer, ClassificationHead)]
    if len(heads) != 1:
        raise ValueError(
            f"Model {model.name!r} has no classification head (built with include_top=False?); "
            "the LiteRT export returns class probabilities."
        )
    return heads[0]


def _num_classes(model) -> int:
    return _head(model).num_classes


def _clip_shape(model) -> tuple[int, int, int, int]:
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 4 or None in shape:
        raise ValueError(f"Model input must be a static (T, H, W, 3) clip; got {shape}.")
    return shape


def _probabilities(head_activation: Callable, logits):
    import keras

    # A logits-only model still exports probabilities: softmax, as a classifier would.
    if head_activation in (None, keras.activations.linear):
        return keras.ops.softmax(logits, axis=-1)
    return head_activation(logits)


def _probabilities_activation(head_activation: Callable | None) -> str:
    """The name of what `_probabilities` applies (recorded in the file's metadata)."""
    import keras

    if head_activation in (None, keras.activations.linear):
        return "softmax"
    return getattr(head_activation, "__name__", str(head_activation))


class ServingGraph:
    """The model's serving function, traced once: what every conversion of an export starts
    from, and the signature its converted files get.

    The function takes `video` (`input_shape`, `input_type`) and returns the probabilities
    and the logits; the converter freezes the model's variables into it.
    """

    def __init__(self, model, input_shape, input_type: str):
        import keras
        import tensorflow as tf

        head = _head(model)
        activation = head.activation

        @tf.function
        def serve(video):
            logits = model(video, training=False)
            return _probabilities(activation, logits), logits

        # The head applies `activation` at call time: tracing with a linear head gives
        # logits, from which both outputs are computed; the user's model is restored after.
        head.activation = keras.activations.linear
        try:
            self.function = serve.get_concrete_function(
                tf.TensorSpec(input_shape, getattr(tf, input_type), name=INPUT_NAME))
        finally:
            head.activation = activation
        self.model = model
        # The converter names the outputs after the function's output tensors.
        self.output_tensors = {name: tensor.name.split(":")[0] for name, tensor
                               in zip((OUTPUT_NAME, LOGITS_NAME), self.function.outputs)}

    def converter(self):
        """A fresh `TFLiteConverter` of the frozen function (builtin ops, no optimisation)."""
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_concrete_functions([self.function], self.model)
        # Convert the frozen graph as it is: lowering it to a SavedModel first (the default)
        # writes and reloads the variables, several times slower for the same ops.
        converter.experimental_lower_to_saved_model = False
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter

    def calibrated(self, clips: np.ndarray) -> bytes:
        """The float conversion set up for int8, with calibration statistics on `clips`
        (in the graph's input layout), signed: what the int8 quantiser starts from."""
        from keras_squeezetime.tflite.int8_quantization import calibrate

        converter = self.converter()
        _set_up_int8(converter)
        return self.signed(_run_converter(lambda: calibrate(converter, clips, np.float32)))

    def signed(self, model_bytes: bytes) -> bytes:
        """`model_bytes`, a conversion of this graph, with the `serving_default` signature."""
        from keras_squeezetime.tflite import flatbuffer

        model = flatbuffer.read(model_bytes)
        subgraph = model.subgraphs[0]
        outputs = {subgraph.tensors[i].name.decode(): int(i) for i in subgraph.outputs}
        missing = sorted(set(self.output_tensors.values()) - set(outputs))
        if len(subgraph.inputs) != 1 or missing:
            raise RuntimeError(f"The converted graph has inputs {list(subgraph.inputs)} and "
                               f"outputs {sorted(outputs)}; expected one input and {missing}.")
        flatbuffer.set_signature(
            model, SIGNATURE_KEY, {INPUT_NAME: int(subgraph.inputs[0])},
            {name: outputs[tensor] for name, tensor in self.output_tensors.items()})
        return flatbuffer.write(model)


def _calibration_array(dataset, input_shape) -> np.ndarray:
    clips = [np.asarray(clip) for clip in dataset]
    if not clips:
        raise ValueError("representative_dataset is empty.")
    clips = [clip[None] if clip.ndim == len(input_shape) - 1 else clip for clip in clips]
    for clip in clips:
        if tuple(clip.shape) != tuple(input_shape):
            raise ValueError(
                f"Representative clip of shape {tuple(clip.shape[1:])} does not match the "
                f"model input {tuple(input_shape[1:])} (frames, height, width, channels); "
                "sample clips with the model's frames and image size."
            )
    return np.concatenate(clips).astype(np.float32)


def _convert(
    graph: ServingGraph,
    quantization: str,
    input_type: str,
    calibration: np.ndarray | None,
    integer_output: bool,
    float_layers: Sequence[str],
) -> bytes:
    import tensorflow as tf

    if quantization == "int8":
        from keras_squeezetime.tflite.int8_quantization import quantize

        # Calibrate, then quantise: the route that can keep chosen layers float and give
        # a uint8 input quantised with scale 1 (raw pixel bytes, no cast in the model).
        calibrated = graph.calibrated(calibration)
        return _run_converter(lambda: quantize(calibrated, float_layers, input_type,
                                               integer_output))
    converter = graph.converter()
    if quantization in ("float16", "float16-compute"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        if quantization == "float16-compute":
            from keras_squeezetime.tflite import compat

            compat.request_fp16_accumulation(converter)
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return graph.signed(_run_converter(converter.convert))


def _set_up_int8(converter) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # Integer kernels first; float builtins only for ops without an int8 kernel.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                           tf.lite.OpsSet.TFLITE_BUILTINS]


def finish_converted(model_bytes: bytes, hybrid: bool, input_type: str) -> bytes:
    """The rewrites a converted model gets before metadata: int8 kernels for the float
    layers of an int8 model (if `hybrid`, see `hybrid_fallback`), then, for a uint8
    input, the input ops XNNPACK takes (`input_ops`)."""
    if hybrid:
        from keras_squeezetime.tflite.hybrid_fallback import quantize_float_conv_weights

        model_bytes, _ = quantize_float_conv_weights(model_bytes)
    if input_type == "uint8":
        from keras_squeezetime.tflite.input_ops import delegate_uint8_input

        model_bytes = delegate_uint8_input(model_bytes)
    return model_bytes


def _agreeing_int8(graph: ServingGraph, input_type: str, clips: np.ndarray, calibration: np.ndarray,
                   held_out: np.ndarray, integer_output: bool, target: float) -> tuple[bytes, dict]:
    """`(finished int8 model, report dict)` from `int8_agreement.agreeing_int8_model`.

    `clips`/`held_out` are pixel clips; `calibration` is `clips` in the graph's layout.
    """
    from keras_squeezetime.tflite import int8_agreement
    from keras_squeezetime.tflite.int8_quantization import quantize

    calibrated = graph.calibrated(calibration)

    def to_int8(model: bytes, denied: Sequence[str]) -> bytes:
        return _run_converter(lambda: quantize(model, (), input_type, integer_output,
                                               denied_tensors=denied))

    model_bytes, report = int8_agreement.agreeing_int8_model(
        calibrated, clips, held_out, target, to_int8,
        lambda model, hybrid: finish_converted(model, hybrid, input_type))
    return model_bytes, report.as_dict()


def _run_converter(convert: Callable[[], bytes]) -> bytes:
    """Runs a conversion, turning "needs Flex" converter errors into `UnsupportedOpsError`."""
    from keras_squeezetime.tflite import compat

    try:
        return convert()
    except compat.converter_error() as error:
        flex = sorted(set(re.findall(r"\btf\.([A-Za-z0-9_]+)", str(error))))
        if flex:
            raise UnsupportedOpsError(
                f"These TensorFlow ops have no builtin LiteRT kernel and would need the Flex "
                f"delegate, which phones running plain LiteRT lack: {', '.join(flex)}."
            ) from None
        raise
