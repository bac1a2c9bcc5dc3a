"""Which ops XNNPACK takes, as `LiteRTModel.delegation()` reports it, on tiny real models."""

from __future__ import annotations

import numpy as np

import tensorflow as tf


def _convert(tmp_path, quantize: bool) -> str:
    """conv -> depthwise -> conv behind a `serving_default(video)` signature, as a .tflite.

    Every kernel holds >= 1024 weights, so dynamic-range quantisation quantises all three;
    XNNPACK runs dynamic-range convolutions but not a dynamic-range depthwise convolution.
    """
    rng = np.random.default_rng(0)
    conv1 = tf.constant(rng.normal(0, 0.1, (3, 3, 16, 128)), tf.float32)
    depthwise = tf.constant(rng.normal(0, 0.1, (3, 3, 128, 1)), tf.float32)
    conv2 = tf.constant(rng.normal(0, 0.1, (1, 1, 128, 16)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, 2, 8, 8, 8), tf.float32, name="video")])
    def serve(video):
        x = tf.reshape(video, (1, 8, 8, 16))
        x = tf.nn.relu(tf.nn.conv2d(x, conv1, 1, "SAME"))
        x = tf.nn.relu(tf.nn.depthwise_conv2d(x, depthwise, (1, 1, 1, 1), "SAME"))
        return {"probabilities": tf.nn.conv2d(x, conv2, 1, "SAME")}

    module = tf.Module()
    module.serve = serve
    saved = str(tmp_path / "saved_model")
    tf.saved_model.save(module, saved, signatures={"serving_default": serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = tmp_path / ("dynamic.tflite" if quantize else "float.tflite")
    path.write_bytes(converter.convert())
    return str(path)


def test_float_graph_is_one_partition(tmp_path):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    model = LiteRTModel(_convert(tmp_path, quantize=False), threads=1)
    assert model.delegation() == {"partitions": 1, "ops_outside": {}}


def test_undelegated_op_is_named_and_splits_the_graph(tmp_path):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    model = LiteRTModel(_convert(tmp_path, quantize=True), threads=1)
    # The depthwise convolution (and the ReLU fused into it) stays in LiteRT's kernels:
    # one convolution on each side of it, two partitions.
    assert model.delegation() == {"partitions": 2, "ops_outside": {"DEPTHWISE_CONV_2D": 1}}
    clip = np.random.default_rng(1).normal(size=(2, 8, 8, 8)).astype(np.float32)
    assert np.isfinite(model.run(clip)["probabilities"]).all()


def test_model_config_of_a_tflite_file(tiny, tmp_path):
    """config.json beside the file < settings embedded at export < what the file fixes."""
    from keras_squeezetime.model_config import ModelConfig, write_model_config
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    path = export_tflite(tiny.folded, tmp_path / "m.tflite", class_names=tiny.NAMES,
                         sampling={"frame_interval": 3, "short_side": 80},
                         input_layout="stacked").path
    model = LiteRTModel(path, threads=1)
    config = model.model_config()
    assert (config.frames, config.image_size) == (tiny.FRAMES, tiny.SIZE)  # fixed by the file
    assert (config.frame_interval, config.short_side) == (3, 80)  # embedded at export
    assert config.num_classes == tiny.CLASSES and config.class_names == tuple(tiny.NAMES)
    # A config.json beside the file gives what the export did not embed (the test
    # protocol), and loses to what it did.
    write_model_config(tmp_path, ModelConfig(frames=16, frame_interval=5, image_size=224,
                                             test_views=(4, 3)))
    config = LiteRTModel(path, threads=1).model_config()
    assert config.test_views == (4, 3) and config.frame_interval == 3
    assert (config.frames, config.image_size) == (tiny.FRAMES, tiny.SIZE)
    assert config.clip_settings("val").short_side == 80
