"""The CompiledModel runner: interpreter outputs on XNNPACK, and XNNPACK's forced fp16.

A sum of 8192 ones is exact in fp32 and in an fp16 result, but an fp16 accumulator stops
at 2048 (2048 + 1 rounds back to 2048): the one-op model below shows which arithmetic ran.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf

K = 8192


@pytest.fixture(scope="module")
def sum_model(tmp_path_factory):
    """`serving_default(video (1, 1, 1, 1, K)) -> probabilities`: 16 sums of the K inputs,
    as float16 weights in a float16-compute file."""
    from keras_squeezetime.tflite import compat
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    ones = tf.constant(np.ones((K, 16), np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 1, 1, 1, K), tf.float32, name="video")])
    def serve(video):
        return {"probabilities": tf.matmul(tf.reshape(video, (1, K)), ones)}

    module = tf.Module()
    module.serve = serve
    folder = tmp_path_factory.mktemp("sum")
    tf.saved_model.save(module, str(folder / "saved"), signatures={"serving_default": serve})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    compat.request_fp16_accumulation(converter)
    path = folder / "sum.tflite"
    path.write_bytes(converter.convert())
    return LiteRTModel(path, threads=1)


def test_compiled_model_gives_the_interpreter_outputs(sum_model):
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner

    clip = np.random.default_rng(0).uniform(0, 1, (1, 1, 1, K)).astype(np.float32)
    compiled = CompiledModelRunner(sum_model, "cpu")
    expected = sum_model.run(clip)["probabilities"]
    np.testing.assert_array_equal(compiled.run(clip)["probabilities"], expected)
    np.testing.assert_allclose(expected, clip.sum(), rtol=1e-5)


def test_fp16_arithmetic_only_when_forced(sum_model):
    """A float16-compute file runs in fp32 on a desktop CPU (XNNPACK honours its fp16 hint
    only on CPUs with fp16 arithmetic it uses natively: ARMv8.2-A); forced, XNNPACK
    accumulates in fp16 where the CPU has fp16 arithmetic (measured 2048 on AVX512-FP16)
    and stays in fp32 where it has none (AMD EPYC without it)."""
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner, cpu_has_fp16_arithmetic

    ones = np.ones((1, 1, 1, K), np.float32)
    assert (sum_model.run(ones)["probabilities"] == K).all()
    assert (CompiledModelRunner(sum_model, "cpu").run(ones)["probabilities"] == K).all()
    forced = CompiledModelRunner(sum_model, "cpu", force_fp16=True).run(ones)["probabilities"]
    if cpu_has_fp16_arithmetic():
        assert (forced < K).all(), forced  # an fp16 accumulator, not fp32 rounded at the end
    else:
        assert (forced == K).all(), forced


def test_options_are_checked(sum_model):
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner

    with pytest.raises(ValueError, match="accelerator must be one of"):
        CompiledModelRunner(sum_model, "npu")
    with pytest.raises(ValueError, match="XNNPACK"):
        CompiledModelRunner(sum_model, "gpu", force_fp16=True)
