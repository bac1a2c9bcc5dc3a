"""The builder: shapes, parameter counts, preprocessing, and clear errors for bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, preprocess_input

SMALL = dict(input_shape=(4, 64, 64, 3), width_multiplier=0.25)


def _trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_full_size_parameter_counts_match_official():
    # PyTorch counts BN statistics as buffers, so the official counts are Keras' trainable ones.
    assert _trainable(SqueezeTime()) == 29_706_688
    backbone = SqueezeTime(include_top=False)
    assert _trainable(backbone) == 28_887_088
    assert backbone.output_shape == (None, 7, 7, 2048)


def test_parity_configuration_parameter_count(parity):
    config = parity["config"]
    model = SqueezeTime(
        include_top=False, width_multiplier=config["widen_factor"],
        input_shape=(config["frames"], *config["input_hw"], 3),
    )
    assert _trainable(model) == config["n_params_backbone"]


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        (dict(include_top=False), (None, 2, 2, 512)),
        (dict(include_top=False, pooling="avg"), (None, 512)),
        (dict(include_top=False, pooling="max"), (None, 512)),
        (dict(num_classes=7), (None, 7)),
        (dict(include_top=False, input_shape=(8, 96, 128, 3)), (None, 3, 4, 512)),
        (dict(include_top=False, input_shape=(1, 64, 64, 3)), (None, 2, 2, 512)),
        # Sizes the official model accepts beyond multiples of 16: stem and pool round up
        # (97 -> 49 -> 25), the 2x2 downsampling rounds down (25 -> 12 -> 6 -> 3).
        (dict(include_top=False, input_shape=(2, 97, 131, 3)), (None, 3, 4, 512)),
        (dict(include_top=False, input_shape=(2, 29, 29, 3)), (None, 1, 1, 512)),
    ],
)
def test_output_shapes(kwargs, expected):
    model = SqueezeTime(**{**SMALL, **kwargs})
    assert model.output_shape == expected
    batch = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    assert model.predict(batch, verbose=0).shape == (2, *expected[1:])


def test_softmax_head_outputs_probabilities():
    model = SqueezeTime(**SMALL, num_classes=5)
    probs = model.predict(np.full((3, 4, 64, 64, 3), 100.0, "float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_include_preprocessing_equals_preprocess_input():
    with_prep = SqueezeTime(**SMALL, num_classes=3, classifier_activation=None)
    without = SqueezeTime(**SMALL, num_classes=3, classifier_activation=None, include_preprocessing=False)
    without.set_weights(with_prep.get_weights())
    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        with_prep.predict(pixels, verbose=0),
        without.predict(np.asarray(preprocess_input(pixels)), verbose=0),
        rtol=1e-6, atol=1e-5,
    )


def test_input_tensor_and_use_as_backbone():
    inputs = keras.Input((4, 64, 64, 3))
    backbone = SqueezeTime(**SMALL, include_top=False, input_tensor=inputs, pooling="avg")
    outputs = keras.layers.Dense(2)(backbone.output)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 2)


def test_model_has_no_lambda_layers():
    model = SqueezeTime(**SMALL)
    assert not [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Lambda)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(input_shape=(64, 64, 3)), r"\(frames, height, width, 3\).*rank 3"),
        (dict(input_shape=(4, 64, 64, 1)), r"expected 3 channels, got 1"),
        (dict(input_shape=(4, 28, 64, 3)), r"at least 29 px.*28x64"),
        (dict(input_shape=(4, None, 64, 3)), r"static"),
        (dict(pooling="mean"), r"pooling"),
        (dict(pos_embed_sizes=(56, 28, 14)), r"one size per stage"),
        (dict(width_multiplier=0), r"width_multiplier"),
        (dict(width_multiplier=0.01), r"width_multiplier must be at least 1/64.*got 0.01"),
        (dict(num_classes=2.5), r"num_classes must be an integer; got 2.5 \(float\)"),
        (dict(num_classes="5"), r"num_classes must be an integer; got '5' \(str\)"),
        (dict(input_tensor=keras.Input((4, 64, 64, 1))),
         r"input_tensor has shape \(4, 64, 64, 1\).*input_shape is \(4, 64, 64, 3\)"),
        (dict(input_tensor=keras.Input((4, 16, 16, 3)), input_shape=None), r"at least 29 px"),
        (dict(input_tensor=keras.Input((4, 64, 64, 1)), input_shape=None),
         r"expected 3 channels, got 1"),
    ],
)
def test_bad_configuration_raises_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SqueezeTime(**{**SMALL, **kwargs})


def test_narrowest_width_and_numpy_class_count_build():
    model = SqueezeTime(**{**SMALL, "width_multiplier": 1 / 64, "num_classes": np.int64(3)})
    assert model.output_shape == (None, 3)
