"""What a flatbuffer computes: op counts, float ops of an int8 model, tensor ranks."""

from __future__ import annotations

import numpy as np

import tensorflow as tf


def _convert(quantize: bool) -> bytes:
    kernel = tf.constant(np.random.default_rng(0).normal(0, 0.3, (3, 3, 6, 8)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, 2, 8, 8, 3), tf.float32)])
    def serve(x):
        y = tf.reshape(tf.transpose(x, (0, 2, 3, 4, 1)), (1, 8, 8, 6))
        return tf.nn.relu(tf.nn.conv2d(y, kernel, 1, "SAME"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    if quantize:
        clips = np.random.default_rng(1).normal(size=(8, 1, 2, 8, 8, 3)).astype(np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([clip] for clip in clips)
    return converter.convert()


def test_op_counts_float_ops_and_ranks():
    from keras_squeezetime.tflite.model_ops import float_ops, max_tensor_rank, op_counts

    float_model, int8_model = _convert(False), _convert(True)
    assert op_counts(float_model) == {"CONV_2D": 1, "RESHAPE": 1, "TRANSPOSE": 1}
    assert op_counts(int8_model)["QUANTIZE"] == 1 and op_counts(int8_model)["DEQUANTIZE"] == 1
    assert max_tensor_rank(float_model) == 5
    # Everything between the boundary QUANTIZE/DEQUANTIZE computes in int8.
    assert float_ops(int8_model) == ()
    assert len(float_ops(float_model)) == 3 and float_ops(float_model)[0].startswith("TRANSPOSE(")
