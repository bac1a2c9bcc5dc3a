"""`layer_errors`: the quantisation debugger's per-op int8 error, in quantisation steps."""

from __future__ import annotations

import numpy as np

import tensorflow as tf

SHAPE = (8, 8, 4)


def _calibrated(tmp_path, clips):
    """conv -> relu -> conv -> relu, calibrated on `clips`."""
    from keras_squeezetime.tflite.int8_quantization import calibrate

    rng = np.random.default_rng(0)
    first = tf.constant(rng.normal(0, 0.3, (3, 3, 4, 8)), tf.float32)
    second = tf.constant(rng.normal(0, 0.3, (3, 3, 8, 8)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, *SHAPE), tf.float32, name="video")])
    def serve(video):
        x = tf.nn.relu(tf.nn.conv2d(video, first, 1, "SAME"))
        return {"out": tf.nn.relu(tf.nn.conv2d(x, second, 1, "SAME"))}

    module = tf.Module()
    module.serve = serve
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return calibrate(converter, clips, np.float32)


def test_errors_are_rounding_sized_for_a_good_calibration_and_large_for_a_bad_one(tmp_path):
    from keras_squeezetime.tflite.quantization_debugger import layer_errors

    clips = np.random.default_rng(1).normal(0, 1, (16, *SHAPE)).astype(np.float32)
    good = layer_errors(_calibrated(tmp_path / "good", clips), clips[:8], np.float32)
    assert len(good) >= 2
    steps = [row["rmse/scale"] for row in good.values()]
    assert steps == sorted(steps, reverse=True)  # worst first
    # Uniform rounding error is 1/sqrt(12) = 0.29 steps; measured 0.3-0.5 here.
    assert all(0.05 < step < 1.5 for step in steps), good
    assert all(row["mean_squared_error"] >= 0 and row["mean_abs_error"] >= 0
               for row in good.values())
    # Calibrated on a tenth of the range: activations clip, errors of many steps.
    bad = layer_errors(_calibrated(tmp_path / "bad", clips * 0.1), clips[:8], np.float32)
    assert max(row["rmse/scale"] for row in bad.values()) > 5 * max(steps), bad
