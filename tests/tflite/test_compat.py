"""Each private TensorFlow/LiteRT call behind `tflite/compat.py`, exercised for what we use it for.

When an upgrade of TensorFlow or ai-edge-litert breaks one of them, it fails here, named,
instead of inside an export.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf

SHAPE = (1, 8, 8, 4)


def _converter(tmp_path):
    """conv -> relu -> conv behind `serving_default(video)`, the op names known."""
    rng = np.random.default_rng(0)
    first = tf.constant(rng.normal(0, 0.3, (3, 3, 4, 8)), tf.float32)
    second = tf.constant(rng.normal(0, 0.3, (1, 1, 8, 4)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec(SHAPE, tf.float32, name="video")])
    def serve(video):
        x = tf.nn.relu(tf.nn.conv2d(video, first, 1, "SAME", name="first"))
        return {"out": tf.nn.conv2d(x, second, 1, "SAME", name="second")}

    module = tf.Module()
    module.serve = serve
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return tf.lite.TFLiteConverter.from_saved_model(path)


def _clips(n=8):
    return np.random.default_rng(1).normal(size=(n, *SHAPE)).astype(np.float32)


def test_installed_versions_are_the_tested_ones():
    """Fails on an upgrade: re-run this file, then update TESTED_VERSIONS."""
    from keras_squeezetime.tflite import compat

    assert compat.untested_versions() == {}, (
        f"Installed versions differ from {compat.TESTED_VERSIONS}: check every test of this "
        "file, then update compat.TESTED_VERSIONS.")


def test_untested_versions_names_the_distribution(monkeypatch):
    from keras_squeezetime.tflite import compat

    monkeypatch.setattr(compat, "installed_version",
                        lambda name: {"tensorflow": "2.22.0", "ai-edge-litert": "2.3.1"}[name])
    assert compat.untested_versions() == {"tensorflow": "2.22.0"}


def test_calibrate_then_quantize_with_a_float_node(tmp_path):
    from keras_squeezetime.tflite import compat, flatbuffer

    converter = _converter(tmp_path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibrated = compat.calibrate_only(converter, lambda: ([c] for c in _clips()))
    model = flatbuffer.read(calibrated)
    ranged = [t for t in model.subgraphs[0].tensors
              if t.quantization is not None and t.quantization.min is not None]
    assert ranged, "calibration recorded no tensor range"
    assert {t.type for t in model.subgraphs[0].tensors} <= {flatbuffer.tensor_type("FLOAT32"),
                                                            flatbuffer.tensor_type("INT32")}

    quantized = flatbuffer.read(compat.mlir_quantize(calibrated))
    int8 = flatbuffer.tensor_type("INT8")
    conv_outputs = [sg.tensors[op.outputs[0]] for sg, op, name in flatbuffer.operators(quantized)
                    if name == "CONV_2D"]
    assert len(conv_outputs) == 2 and all(t.type == int8 for t in conv_outputs)

    # Denied by the calibrated model's name of the second convolution's output.
    second = [sg.tensors[op.outputs[0]].name.decode()
              for sg, op, name in flatbuffer.operators(model) if name == "CONV_2D"][1]
    partly = flatbuffer.read(compat.mlir_quantize(calibrated, denylisted_nodes=[second]))
    types = [sg.tensors[op.outputs[0]].type for sg, op, name in flatbuffer.operators(partly)
             if name == "CONV_2D"]
    assert types == [int8, flatbuffer.tensor_type("FLOAT32")]


def test_calibrated_ranges_are_read_replaced_and_quantised_over(tmp_path):
    """What MSE activation ranges and the uint8 input rely on: the calibrator leaves each
    measured range in the tensor's min/max, and the quantiser takes its scale from a range
    written there."""
    from keras_squeezetime.tflite import compat, flatbuffer

    converter = _converter(tmp_path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibrated = compat.calibrate_only(converter, lambda: ([c] for c in _clips()))
    model = flatbuffer.read(calibrated)
    tensors = model.subgraphs[0].tensors
    convs = [op for _, op, name in flatbuffer.operators(model) if name == "CONV_2D"]
    assert flatbuffer.signature_outputs(model) == {"out": convs[1].outputs[0]}
    first = convs[0].outputs[0]
    # The first convolution's ReLU output over the calibration clips, computed here.
    kernel = np.random.default_rng(0).normal(0, 0.3, (3, 3, 4, 8)).astype(np.float32)
    relu = tf.nn.relu(tf.nn.conv2d(np.concatenate(_clips()), kernel, 1, "SAME")).numpy()
    low, high = compat.calibrated_range(tensors[first])
    assert (low == pytest.approx(relu.min(), abs=1e-5)
            and high == pytest.approx(relu.max(), rel=1e-5))
    weights = convs[0].inputs[1]
    assert compat.calibrated_range(tensors[weights]) is None
    with pytest.raises(ValueError, match="has no calibrated range"):
        compat.set_calibrated_range(tensors[weights], 0.0, 1.0)

    compat.set_calibrated_range(tensors[first], 0.0, high / 2)
    assert compat.calibrated_range(tensors[first]) == pytest.approx((0.0, high / 2))
    quantized = flatbuffer.read(compat.mlir_quantize(flatbuffer.write(model)))
    name = tensors[first].name
    (params,) = [t.quantization for t in quantized.subgraphs[0].tensors if t.name == name]
    assert params.scale[0] == pytest.approx(high / 2 / 255, rel=1e-5)
    assert list(params.zeroPoint) == [-128]


def test_converter_error_is_what_the_converter_raises(tmp_path):
    from keras_squeezetime.tflite import compat

    @tf.function(input_signature=[tf.TensorSpec((4, 4), tf.float32)])
    def serve(x):
        return {"out": tf.linalg.inv(x)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with pytest.raises(compat.converter_error(), match="MatrixInverse"):
        converter.convert()


def test_fp16_accumulation_request_lands_in_the_metadata(tmp_path):
    from keras_squeezetime.tflite import compat, flatbuffer

    converter = _converter(tmp_path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    plain = converter.convert()
    compat.request_fp16_accumulation(converter)
    fp16 = converter.convert()
    key = compat.REDUCED_PRECISION_KEY
    assert flatbuffer.read_metadata(fp16, [key]) == {key: compat.FP16_ACCUMULATION_VALUE.encode()}
    # The plain float16 file allows fp16 storage only: XNNPACK keeps fp32 arithmetic.
    assert flatbuffer.read_metadata(plain, [key]) == {key: b"fp16accfp32"}


def test_debugger_scales_and_interpreter_ops(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite import compat

    converter = _converter(tmp_path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibrated = compat.calibrate_only(converter, lambda: ([c] for c in _clips()))
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=compat.mlir_quantize(calibrated, enable_numeric_verify=True),
        debug_dataset=lambda: ([c] for c in _clips(2)))
    scales = compat.debugger_tensor_scales(debugger)
    assert scales and all(value >= 0 for value in scales.values())
    assert any(value > 0 for value in scales.values())

    interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
    interpreter.allocate_tensors()
    ops = compat.ops_details(interpreter)
    assert {"op_name", "inputs", "outputs", "index"} <= set(ops[0])
    # Every node, the delegate's included: XNNPACK took both convolutions.
    assert sorted(op["op_name"] for op in ops) == ["CONV_2D", "CONV_2D", "DELEGATE"]
