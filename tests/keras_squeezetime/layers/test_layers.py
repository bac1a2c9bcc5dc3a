"""Each layer: registered, config round trip, and its own maths checked independently."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import layers as st_layers
from keras_squeezetime.layers.positional import align_corners_matrix

RNG = np.random.default_rng(0)

CASES = [
    (st_layers.VideoNormalization, {}, (2, 3, 8, 8, 3)),
    (st_layers.VideoNormalization, {"folded": True}, (2, 3, 8, 8, 3)),
    (st_layers.SpatialBias, {}, (2, 4, 4, 8)),
    (st_layers.TimeToChannel, {}, (2, 3, 8, 8, 3)),
    (st_layers.PositionalEmbedding, {"size": 6}, (2, 4, 4, 16)),
    (st_layers.TemporalFocus, {"channels": 8}, (2, 4, 4, 8)),
    (st_layers.InterTemporalInteraction, {"out_channels": 8, "pos_embed_size": 4}, None),
    (st_layers.ChannelTimeLearning, {"out_channels": 8, "pos_embed_size": 4}, (2, 4, 4, 8)),
    (st_layers.CTLBottleneck, {"planes": 4, "pos_embed_size": 4, "strides": 2}, (2, 8, 8, 8)),
    (st_layers.CTLBottleneck, {"planes": 4, "pos_embed_size": 4}, (2, 4, 4, 16)),
    (st_layers.ClassificationHead, {"num_classes": 5, "activation": None}, (2, 3, 3, 8)),
]


def _call(layer, shape):
    if isinstance(layer, st_layers.InterTemporalInteraction):
        x = RNG.normal(size=(2, 4, 4, 8)).astype("float32")
        return layer(x, x * 0.5)
    return layer(RNG.normal(size=shape).astype("float32"))


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=lambda v: getattr(v, "__name__", None))
def test_layer_is_registered_and_round_trips(cls, kwargs, shape):
    assert keras.saving.get_registered_name(cls) == f"keras_squeezetime>{cls.__name__}"
    layer = cls(**kwargs)
    out = _call(layer, shape)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is cls and clone.get_config() == layer.get_config()
    # Same weights -> same output (inference mode, so dropout and BN statistics are fixed).
    np.random.seed(1)
    x = RNG.normal(size=shape or (2, 4, 4, 8)).astype("float32")
    if isinstance(layer, st_layers.InterTemporalInteraction):
        expected = layer(x, x * 0.5)
        clone(x, x * 0.5)
        clone.set_weights(layer.get_weights())
        actual = clone(x, x * 0.5)
    else:
        expected = layer(x)
        clone(x)
        clone.set_weights(layer.get_weights())
        actual = clone(x)
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6, atol=1e-6)
    if shape is not None:
        assert tuple(out.shape) == tuple(layer.compute_output_shape(shape))


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
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs, rtol=1e-5)


def test_temporal_focus_gates_lie_in_unit_interval():
    focus = st_layers.TemporalFocus(6)
    gates = np.asarray(focus(RNG.normal(size=(3, 5, 5, 6)).astype("float32") * 10))
    assert gates.shape == (3, 1, 1, 6)
    assert (gates > 0).all() and (gates < 1).all()
