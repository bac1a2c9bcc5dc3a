"""The per-op profiler: each operator cut out alone computes what it computes in the model."""

from __future__ import annotations

import numpy as np
import pytest

import tensorflow as tf


@pytest.fixture(scope="module")
def model_bytes():
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0, 0.3, (3, 3, 4, 8)), tf.float32)
    shift = tf.constant(rng.normal(0, 1, (8,)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 4), tf.float32)])
    def serve(x):
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        return tf.reduce_mean(tf.nn.relu(y + shift) * y, axis=(1, 2))

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()]).convert()


def test_single_op_model_computes_the_op(model_bytes):
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite import flatbuffer
    from keras_squeezetime.tflite.op_profile import single_op_model

    names = [name for _, _, name in flatbuffer.operators(flatbuffer.read(model_bytes))]
    assert names[0] == "CONV_2D" and len(names) >= 3
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 4)).astype(np.float32)
    single = Interpreter(model_content=single_op_model(model_bytes, 0))
    single.allocate_tensors()
    assert len(single.get_input_details()) == 1  # the kernel and bias came as constants
    single.set_tensor(single.get_input_details()[0]["index"], x)
    single.invoke()
    got = single.get_tensor(single.get_output_details()[0]["index"])
    whole = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True)
    whole.allocate_tensors()
    whole.set_tensor(whole.get_input_details()[0]["index"], x)
    whole.invoke()
    conv_output = flatbuffer.read(model_bytes).subgraphs[0].operators[0].outputs[0]
    np.testing.assert_allclose(got, whole.get_tensor(conv_output), rtol=1e-6, atol=1e-6)


def test_profile_times_every_op_and_groups_them(model_bytes):
    from keras_squeezetime.tflite import op_profile

    rows = op_profile.profile(model_bytes, threads=1, runs=3, warmup=1)
    ops = [name for _, _, name in op_profile.flatbuffer.operators(
        op_profile.flatbuffer.read(model_bytes))]
    assert [row.op for row in rows] == ops
    assert all(row.median_ms > 0 and row.dtype == "FLOAT32" for row in rows)
    by_op = op_profile.totals(rows, "op")
    assert sum(count for count, _ in by_op.values()) == len(rows)
    assert list(by_op.values()) == sorted(by_op.values(), key=lambda v: -v[1])


@pytest.mark.parametrize("name, group", [
    ("squeezetime_1/stage2_block3_1/ctl_1/ioi_1/add", "stage2"),
    ("squeezetime_1/stem_conv_1/convolution;squeezetime_1/stem_bias_1/add", "stem"),
    ("squeezetime_1/head_1/Mean", "head"),
    ("serving_default_video:0", "io"),
    ("StatefulPartitionedCall:0", "io"),
])
def test_group_of_tensor(name, group):
    from keras_squeezetime.tflite.op_profile import group_of_tensor

    assert group_of_tensor(name) == group


def test_stage_slices_cover_the_model_in_order(tiny, tmp_path):
    from keras_squeezetime.tflite import flatbuffer, op_profile
    from keras_squeezetime.tflite.export import export_tflite

    path = export_tflite(tiny.folded, tmp_path / "m.tflite", input_type="uint8",
                         input_layout="stacked").path
    model_bytes = open(path, "rb").read()
    runs = op_profile.group_runs(flatbuffer.read(model_bytes))
    assert [group for group, _, _ in runs] == ["io", "stem", "stage1", "stage2", "stage3",
                                               "stage4", "head", "io"]
    assert runs[0][1] == 0 and all(a[2] == b[1] for a, b in zip(runs, runs[1:]))
    times = op_profile.group_times(model_bytes, threads=1, runs=3, warmup=1)
    assert set(times) == {"io", "stem", "stage1", "stage2", "stage3", "stage4", "head"}
    assert all(value > 0 for value in times.values())
