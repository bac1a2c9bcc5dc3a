"""uint8 input conversions rewritten for XNNPACK: same outputs, nothing left outside."""

from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf

SHAPE = (1, 2, 8, 8, 3)


def _convert(tmp_path, quantize: bool) -> bytes:
    """uint8 pixels -> transpose/reshape -> conv, as the float (CAST) or int8 (QUANTIZE) kind."""
    kernel = tf.constant(np.random.default_rng(0).normal(0, 0.1, (3, 3, 6, 8)), tf.float32)
    dtype = tf.float32 if quantize else tf.uint8

    @tf.function(input_signature=[tf.TensorSpec(SHAPE, dtype, name="video")])
    def serve(video):
        x = tf.reshape(tf.transpose(tf.cast(video, tf.float32), (0, 2, 3, 4, 1)), (1, 8, 8, 6))
        return {"probabilities": tf.nn.conv2d(x, kernel, 1, "SAME")}

    module = tf.Module()
    module.serve = serve
    saved = str(tmp_path / ("int8" if quantize else "float"))
    tf.saved_model.save(module, saved, signatures={"serving_default": serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if quantize:
        clips = np.random.default_rng(1).integers(0, 256, (4, *SHAPE)).astype(np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([clip] for clip in clips)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter.convert()


def _ops_and_output(path, flatbuffer: bytes, clip: np.ndarray):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    path.write_bytes(flatbuffer)
    model = LiteRTModel(path, threads=1)
    assert model.input_dtype == np.uint8
    return model.delegation(), model.run(clip)["probabilities"]


@pytest.mark.parametrize("quantize, converted_op", [(False, "CAST"), (True, "QUANTIZE")])
def test_rewrite_keeps_outputs_and_moves_the_input_op_into_xnnpack(tmp_path, quantize,
                                                                   converted_op):
    from keras_squeezetime.tflite.input_ops import delegate_uint8_input
    from keras_squeezetime.tflite.model_ops import op_counts

    original = _convert(tmp_path, quantize)
    rewritten = delegate_uint8_input(original)
    assert converted_op in op_counts(original)
    before_ops, after_ops = op_counts(original), op_counts(rewritten)
    assert after_ops.get("DEQUANTIZE", 0) == before_ops.get("DEQUANTIZE", 0) + 1
    clip = np.random.default_rng(2).integers(0, 256, SHAPE[1:]).astype(np.float32)
    before, expected = _ops_and_output(tmp_path / "before.tflite", original, clip)
    after, actual = _ops_and_output(tmp_path / "after.tflite", rewritten, clip)
    assert before["ops_outside"] == {converted_op: 1}
    assert after == {"partitions": 1, "ops_outside": {}}
    np.testing.assert_array_equal(actual, expected)
    assert delegate_uint8_input(rewritten) == rewritten  # nothing left to rewrite
