"""The flatbuffer read/write helper on a real converted model."""

from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf


@pytest.fixture(scope="module")
def model_bytes():
    kernel = tf.constant(np.random.default_rng(0).normal(0, 0.3, (3, 3, 4, 8)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 4), tf.float32)])
    def serve(x):
        return tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()]).convert()


def _run(model_bytes, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_round_trip_keeps_ops_and_outputs(model_bytes):
    from keras_squeezetime.tflite import flatbuffer

    model = flatbuffer.read(model_bytes)
    assert [name for _, _, name in flatbuffer.operators(model)] == ["CONV_2D"]
    again = flatbuffer.write(model)
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(_run(again, x), _run(model_bytes, x))


def test_opcode_index_reuses_or_adds(model_bytes):
    from keras_squeezetime.tflite import flatbuffer

    model = flatbuffer.read(model_bytes)
    count = len(model.operatorCodes)
    assert flatbuffer.opcode_index(model, "CONV_2D") < count
    added = flatbuffer.opcode_index(model, "DEQUANTIZE")
    assert added == count and flatbuffer.opcode_index(model, "DEQUANTIZE") == added
    op = flatbuffer.new_operator(model, "DEQUANTIZE", [0], [1])
    assert flatbuffer.op_name(model, op) == "DEQUANTIZE"


def test_metadata_written_replaced_and_read_back(model_bytes):
    from keras_squeezetime.tflite import flatbuffer

    model = flatbuffer.read(model_bytes)
    flatbuffer.set_metadata(model, {"a": b"first", "b": b"\x00\x01"})
    flatbuffer.set_metadata(model, {"a": b"second"})
    written = flatbuffer.write(model)
    entries = flatbuffer.read_metadata(written)
    assert entries["a"] == b"second" and entries["b"] == b"\x00\x01"
    assert list(flatbuffer.read_metadata(written, ["b"])) == ["b"]
    x = np.ones((1, 8, 8, 4), np.float32)
    np.testing.assert_array_equal(_run(written, x), _run(model_bytes, x))
