"""Each layer: registered, config round trip, and its own maths checked independently."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import layers as st_layers
from keras_squeezetime.layers.positional import align_corners_matrix
from tests.helpers import run_layer_test

RNG = np.random.default_rng(0)


def _data(*shape):
    return np.random.default_rng(len(shape) + sum(shape)).normal(size=shape).astype("float32")


# (class, constructor arguments, input(s), output shape, has trainable weights)
CASES = [
    (st_layers.VideoNormalization, {}, _data(2, 3, 8, 8, 3), (2, 3, 8, 8, 3), False),
    (st_layers.VideoNormalization, {"folded": True}, _data(2, 3, 8, 8, 3), (2, 3, 8, 8, 3), False),
    (st_layers.SpatialBias, {}, _data(2, 4, 4, 8), (2, 4, 4, 8), True),
    (st_layers.TimeToChannel, {}, _data(2, 3, 8, 8, 3), (2, 8, 8, 9), False),
    (st_layers.PositionalEmbedding, {"size": 6}, _data(2, 4, 4, 16), (2, 4, 4, 16), True),
    (st_layers.TemporalFocus, {"channels": 8}, _data(2, 4, 4, 8), (2, 1, 1, 8), True),
    (st_layers.InterTemporalInteraction, {"out_channels": 8, "pos_embed_size": 4},
     (_data(2, 4, 4, 8), _data(2, 4, 4, 8) * 0.5), (2, 4, 4, 8), True),
    (st_layers.ChannelTimeLearning, {"out_channels": 8, "pos_embed_size": 4}, _data(2, 4, 4, 8),
     (2, 4, 4, 8), True),
    (st_layers.CTLBottleneck, {"planes": 4, "pos_embed_size": 4, "strides": 2},
     _data(2, 8, 8, 8), (2, 4, 4, 16), True),
    (st_layers.CTLBottleneck, {"planes": 4, "pos_embed_size": 4}, _data(2, 4, 4, 16),
     (2, 4, 4, 16), True),
    (st_layers.ClassificationHead, {"num_classes": 5, "activation": None}, _data(2, 3, 3, 8),
     (2, 5), True),
]


@pytest.mark.parametrize("cls,kwargs,data,shape,trainable", CASES,
                         ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(CASES)])
def test_layer(cls, kwargs, data, shape, trainable):
    run_layer_test(cls, kwargs, data, expected_output_shape=shape, expect_trainable=trainable)


def test_time_to_channel_uses_official_channel_order():
    x = RNG.normal(size=(2, 4, 3, 5, 3)).astype("float32")  # B, T, H, W, C
    out = np.asarray(st_layers.TimeToChannel()(x))
    assert out.shape == (2, 3, 5, 12)
    for c in range(3):
        for t in range(4):
            np.testing.assert_array_equal(out[..., c * 4 + t], x[:, t, :, :, c])


def test_video_normalization_values():
    x = np.array([[[[[0.0, 128.0, 255.0]]]]], dtype="float32")
    out = np.asarray(st_layers.VideoNormalization()(x))[0, 0, 0, 0]
    expected = [(0 - 123.675) / 58.395, (128 - 116.28) / 57.12, (255 - 103.53) / 57.375]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    out_uint8 = np.asarray(st_layers.VideoNormalization()(x.astype("uint8")))[0, 0, 0, 0]
    np.testing.assert_allclose(out_uint8, expected, rtol=1e-6)


def test_align_corners_matrix_matches_definition():
    # 2 -> 3 samples: the middle output is the mean of both inputs, ends are copied.
    np.testing.assert_allclose(align_corners_matrix(3, 2), [[1, 0], [0.5, 0.5], [0, 1]])
    # 7 -> 3 picks rows 0, 3, 6 exactly; 56 -> 28 maps output i to input i * 55/27.
    np.testing.assert_allclose(align_corners_matrix(3, 7) @ np.arange(7.0), [0, 3, 6])
    np.testing.assert_allclose(
        align_corners_matrix(28, 56) @ np.arange(56.0), np.arange(28) * 55 / 27, atol=1e-12
    )
    assert np.allclose(align_corners_matrix(28, 56).sum(axis=1), 1.0)


def test_positional_embedding_resizes_bilinearly():
    layer = st_layers.PositionalEmbedding(size=3)
    zeros = np.zeros((1, 5, 5, 2), "float32")
    layer.build(zeros.shape)
    grid = np.arange(9, dtype="float32").reshape(3, 3)  # value = 3 * row + col: linear
    layer.embedding.assign(np.stack([grid, -grid], axis=-1))
    out = np.asarray(layer(zeros))[0]
    rows, cols = np.meshgrid(np.linspace(0, 2, 5), np.linspace(0, 2, 5), indexing="ij")
    # Bilinear interpolation of a linear function is exact.
    np.testing.assert_allclose(out[..., 0], 3 * rows + cols, atol=1e-5)
    np.testing.assert_allclose(out[..., 1], -(3 * rows + cols), atol=1e-5)


def test_head_activation_can_be_switched_to_logits():
    head = st_layers.ClassificationHead(4, dropout_rate=0.0)
    x = RNG.normal(size=(2, 3, 3, 8)).astype("float32")
    probs = np.asarray(head(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    head.activation = keras.activations.linear
    logits = np.asarray(head(x))
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs,
                               rtol=1e-5)


def test_temporal_focus_gates_lie_in_unit_interval():
    focus = st_layers.TemporalFocus(6)
    # Moderate inputs: a sigmoid of a large value rounds to exactly 1.0 in float32.
    gates = np.asarray(focus(np.random.default_rng(5).normal(size=(3, 5, 5, 6)).astype("float32")))
    assert gates.shape == (3, 1, 1, 6)
    assert (gates > 0).all() and (gates < 1).all()


def test_downsampling_kernel_and_biases_start_as_the_official_ones():
    # PyTorch: kaiming_normal_(fan_out) of a (C, 1, 2, 2) depthwise weight has fan-out 4C,
    # so std sqrt(2 / 4C); every conv bias keeps PyTorch's U(+-1/sqrt(fan_in)).
    keras.utils.set_random_seed(0)
    channels = 256
    block = st_layers.CTLBottleneck(planes=16, pos_embed_size=4, strides=2)
    block.build((2, 8, 8, channels))
    kernel = np.asarray(block.downsample.kernel)
    assert kernel.std() == pytest.approx(np.sqrt(2 / (4 * channels)), rel=0.1)
    bounds = [
        (block.downsample.bias, 1 / np.sqrt(4)),
        (block.ctl.ioi.short_conv.bias, 1 / np.sqrt(9 * 16)),
        (block.ctl.ioi.gate_conv1.bias, 1 / np.sqrt(9 * 16)),
        (block.ctl.ioi.gate_conv2.bias, 1 / np.sqrt(49 * 16)),
        (block.ctl.ioi.gate_conv3.bias, 1 / np.sqrt(9 * 16)),
    ]
    for bias, bound in bounds:
        values = np.asarray(bias)
        assert np.abs(values).max() <= bound, bias.path
        assert np.abs(values).max() > 0.7 * bound, bias.path  # uniform, not zeros


# Layers holding sub-layers: (class, constructor arguments, input shapes).
COMPOSITE = [
    (st_layers.CTLBottleneck, {"planes": 4, "pos_embed_size": 4, "strides": 2}, [(2, 8, 8, 8)]),
    (st_layers.ChannelTimeLearning, {"out_channels": 8, "pos_embed_size": 7}, [(2, 4, 4, 8)]),
    (st_layers.InterTemporalInteraction, {"out_channels": 8, "pos_embed_size": 4},
     [(2, 4, 4, 8), (2, 4, 4, 8)]),
    (st_layers.TemporalFocus, {"channels": 8}, [(2, 4, 4, 8)]),
    (st_layers.ClassificationHead, {"num_classes": 5}, [(2, 3, 3, 8)]),
]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "float16"])
@pytest.mark.parametrize("cls,kwargs,shapes", COMPOSITE, ids=[c[0].__name__ for c in COMPOSITE])
def test_sub_layers_compute_in_the_layer_dtype_policy(cls, kwargs, shapes, policy):
    layer = cls(**kwargs, dtype=policy)
    output = layer(*[_data(*shape) for shape in shapes], training=False)
    subs = list(layer._flatten_layers(include_self=False))
    assert subs and {sub.dtype_policy.name for sub in subs} == {policy}, \
        [(sub.name, sub.dtype_policy.name) for sub in subs]
    # The head's activation runs on float32 logits (Keras' mixed precision guide).
    expected = "float32" if cls is st_layers.ClassificationHead else layer.compute_dtype
    assert keras.backend.standardize_dtype(output.dtype) == expected


def test_head_activation_is_float32_under_mixed_precision():
    head = st_layers.ClassificationHead(400, dropout_rate=0.0, dtype="mixed_bfloat16")
    x = np.random.default_rng(3).normal(size=(2, 3, 3, 64)).astype("float32")
    probs = head(x)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    # bfloat16 probabilities (8-bit mantissas) sum to 1 only within ~1e-3.
    np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1.0, rtol=1e-5)
    assert head(keras.Input((3, 3, 64))).dtype == "float32"  # the symbolic output agrees


@pytest.mark.parametrize("cls,shape", [(st_layers.TimeToChannel, (2, 3, 8, 8, 3)),
                                       (st_layers.SpatialBias, (2, 4, 4, 8))])
def test_layer_given_a_dtype_policy_object_serialises(cls, shape):
    # Composite layers and `fold_batch_norm` pass `dtype=<DTypePolicy>`, not a string.
    layer = cls(dtype=keras.DTypePolicy("mixed_bfloat16"), name="given_policy")
    layer(_data(*shape))
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.dtype_policy.name == "mixed_bfloat16" and clone.name == "given_policy"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: st_layers.VideoNormalization(std=(0, 1, 1)),
         r"std must hold positive finite numbers, one per channel; got \(0, 1, 1\)"),
        (lambda: st_layers.VideoNormalization(std=(58.0, -1.0, 57.0)), r"std must hold positive"),
        (lambda: st_layers.VideoNormalization(mean="abc"), r"mean must be a non-empty sequence"),
        (lambda: st_layers.VideoNormalization(mean=(1, 2), std=(1, 2))(_data(1, 2, 4, 4, 3)),
         r"mean and std have 2 values, one per channel, but the input has 3 channels"),
        (lambda: st_layers.PositionalEmbedding(0), r"size .*must be a positive integer; got 0"),
        (lambda: st_layers.PositionalEmbedding(2.5), r"size .*must be a positive integer; got 2.5"),
        (lambda: st_layers.TimeToChannel()(keras.Input((None, 8, 8, 3))),
         r"static frames, height, width and channels.*\(None, None, 8, 8, 3\)"),
        (lambda: st_layers.TimeToChannel()(_data(2, 8, 8, 3)),
         r"expected a clip \(batch, frames, height, width, channels\)"),
    ],
)
def test_bad_layer_arguments_raise_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
