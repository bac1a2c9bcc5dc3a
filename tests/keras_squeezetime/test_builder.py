"""The builder: shapes, parameter counts, preprocessing, and clear errors for bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, preprocess_input
from tests.helpers import damp_batch_norm, varied_clips

# Outputs by direct calls: `predict` first traces a function for each model, which costs
# several calls here and is not what these tests check.
SMALL = dict(input_shape=(4, 64, 64, 3), width_multiplier=0.25)
TINY_FAST = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


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
    assert np.asarray(model(batch)).shape == (2, *expected[1:])


def test_softmax_head_outputs_probabilities():
    model = SqueezeTime(**SMALL, num_classes=5)
    probs = np.asarray(model(np.full((3, 4, 64, 64, 3), 100.0, "float32")))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_include_preprocessing_equals_preprocess_input():
    # The normalisation is per pixel: the tiny model shows it.
    with_prep = SqueezeTime(**TINY_FAST, num_classes=3, classifier_activation=None)
    without = SqueezeTime(**TINY_FAST, num_classes=3, classifier_activation=None,
                          include_preprocessing=False)
    without.set_weights(with_prep.get_weights())
    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(with_prep(pixels)), np.asarray(without(np.asarray(preprocess_input(pixels)))),
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
    assert not [layer for layer in model._flatten_layers()
                if isinstance(layer, keras.layers.Lambda)]


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
        (dict(pos_embed_sizes=(0, 8, 4, 2)), r"pos_embed_sizes must hold positive integers.*"
         r"got \(0, 8, 4, 2\)"),
        (dict(pos_embed_sizes=(-1, 8, 4, 2)), r"pos_embed_sizes must hold positive integers"),
        (dict(pos_embed_sizes=(16, 8.5, 4, 2)), r"pos_embed_sizes must hold positive integers"),
        (dict(pos_embed_sizes="abcd"), r"pos_embed_sizes must be a sequence of 4 positive "
         r"integers.*got 'abcd'"),
        (dict(width_multiplier="0.5"), r"width_multiplier must be a number.*got '0.5' \(str\)"),
        (dict(dropout_rate=1.5), r"dropout_rate must be a number in \[0, 1\); got 1.5"),
        (dict(input_shape=(4, 64.0, 64, 3)), r"input_shape must hold integers"),
        (dict(classes=7, num_classes=5), r"classes and num_classes are one argument.*"
         r"classes=7 and num_classes=5"),
        (dict(classes="7"), r"classes must be an integer; got '7' \(str\)"),
        (dict(classes=0), r"classes must be at least 1; got 0"),
        # Without the head the class count is ignored, but a wrong type is still a mistake.
        (dict(include_top=False, num_classes="x"), r"num_classes must be an integer; got 'x'"),
        # Shape problems of an input_tensor name the input_tensor, not input_shape.
        (dict(input_tensor=keras.Input((4, 16, 16, 3)), input_shape=None),
         r"at least 29 px.*in input_tensor's shape \(without the batch axis\) \(4, 16, 16, 3\)"),
        (dict(input_tensor=keras.Input((64, 64, 3)), input_shape=None),
         r"^input_tensor's shape \(without the batch axis\) must be \(frames, height, width, 3\)"),
        (dict(input_tensor=np.zeros((1, 4, 64, 64, 3), "float32"), input_shape=None),
         r"^input_tensor must be a KerasTensor \(from keras.Input or a layer's output\); got "
         r"numpy.ndarray\.[^\[]*$"),
    ],
)
def test_bad_configuration_raises_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SqueezeTime(**{**SMALL, **kwargs})


def test_narrowest_width_and_numpy_class_count_build():
    model = SqueezeTime(**{**SMALL, "width_multiplier": 1 / 64, "num_classes": np.int64(3)})
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("kwargs", [dict(num_classes=3), dict(include_top=False, pooling="max")])
def test_model_is_channels_last_whatever_the_global_image_data_format(kwargs, tmp_path):
    reference = SqueezeTime(**TINY_FAST, **kwargs)
    damp_batch_norm(reference, seed=0)
    reference.save(tmp_path / "reference.keras")
    clips = varied_clips(2, frames=4, size=32, seed=0)
    expected = np.asarray(reference(clips))
    keras.config.set_image_data_format("channels_first")
    try:
        model = SqueezeTime(**TINY_FAST, **kwargs)
        model.set_weights(reference.get_weights())
        np.testing.assert_array_equal(np.asarray(model(clips)), expected)
        # Loading recreates the blocks' inner layers, under the global setting too.
        loaded = keras.saving.load_model(tmp_path / "reference.keras", safe_mode=True)
        np.testing.assert_array_equal(np.asarray(loaded(clips)), expected)
    finally:
        keras.config.set_image_data_format("channels_last")


def test_head_output_is_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = SqueezeTime(**TINY_FAST, num_classes=400)
        assert model.get_layer("stage1_block1").ctl.temporal_focus.fc1.compute_dtype == "bfloat16"
        probs = np.asarray(model(varied_clips(2, frames=4, size=32, seed=1)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.output.dtype == "float32" and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_classes_is_the_keras_applications_name_of_num_classes():
    assert SqueezeTime(**TINY_FAST, classes=7).output_shape == (None, 7)
    assert SqueezeTime(**TINY_FAST, classes=7, num_classes=7).get_layer("head").num_classes == 7


def test_pretrained_head_takes_only_softmax_or_logits(parity):
    # The official heads were trained through a softmax (keras.applications' rule).
    official = dict(input_shape=(16, 112, 112, 3), width_multiplier=0.25, weights=parity["pth"])
    with pytest.raises(ValueError, match=r"classifier_activation must be 'softmax' or None "
                                         r"with the head of the pretrained weights.*'sigmoid'"):
        SqueezeTime(**official, num_classes=10, classifier_activation="sigmoid")
    # Another class count leaves the head fresh: any activation.
    with pytest.warns(UserWarning, match="head is left fresh"):
        fresh = SqueezeTime(**official, num_classes=4, classifier_activation="sigmoid")
    assert fresh.get_layer("head").activation is keras.activations.sigmoid


def test_pretrained_activation_is_refused_before_a_preset_download(tmp_path, monkeypatch):
    # An empty 'release': a download would fail, so the error shows no download was tried.
    monkeypatch.setenv("KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX", tmp_path.as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(ValueError, match=r"pretrained weights 'kinetics400'.*'sigmoid'"):
        SqueezeTime(**TINY_FAST, weights="kinetics400", classifier_activation="sigmoid")


def test_preprocess_input_takes_keras_applications_data_format():
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 4, 8, 8, 3)).astype("float32")
    expected = preprocess_input(pixels)
    np.testing.assert_array_equal(preprocess_input(pixels, data_format="channels_last"), expected)
    np.testing.assert_array_equal(preprocess_input(pixels, data_format=None), expected)
    with pytest.raises(ValueError, match=r"data_format must be None or 'channels_last'.*"
                                         r"got 'channels_first'"):
        preprocess_input(pixels, data_format="channels_first")
