"""What `load_predictor` feeds a model and which models it takes: models built with
`include_preprocessing=False` (in memory, `.keras`, `.weights.h5` + `config.json`),
backbones, and non-square inputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, preprocess_input
from keras_squeezetime.apps.predictor import load_predictor
from keras_squeezetime.model_loading import load_model
from keras_squeezetime.model_config import write_model_config

TINY = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def raw_model() -> keras.Model:
    """A model that takes clips normalised by `preprocess_input` (logits head)."""
    keras.utils.set_random_seed(3)
    return SqueezeTime(num_classes=3, include_preprocessing=False, classifier_activation=None,
                       **TINY)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (3, 4, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def expected(raw_model, clips) -> np.ndarray:
    """The model's probabilities on the clips normalised as it expects."""
    probabilities = _softmax(np.asarray(raw_model(preprocess_input(clips)), np.float64))
    unnormalised = _softmax(np.asarray(raw_model(clips), np.float64))
    assert np.abs(probabilities - unnormalised).max() > 0.05  # so the tests below can fail
    return probabilities


def test_a_model_without_preprocessing_gets_normalised_clips(raw_model, clips, expected):
    predictor = load_predictor(raw_model)
    assert predictor.config.include_preprocessing is False
    np.testing.assert_allclose(predictor.predict_clips(clips), expected, atol=1e-5)
    # What the Keras model itself takes (for gradients, e.g. explanations).
    np.testing.assert_allclose(predictor.model_inputs(clips), preprocess_input(clips))


def test_saved_and_rebuilt_models_without_preprocessing_get_normalised_clips(
        raw_model, clips, expected, tmp_path):
    raw_model.save(tmp_path / "m.keras")
    run = tmp_path / "run"
    run.mkdir()
    # The run folder of such a model: its .weights.h5 and the config.json of its .keras.
    write_model_config(run, load_model(tmp_path / "m.keras").config)
    raw_model.save_weights(run / "model.weights.h5")
    for source in (tmp_path / "m.keras", run):
        predictor = load_predictor(source)
        assert predictor.config.include_preprocessing is False, source
        np.testing.assert_allclose(predictor.predict_clips(clips), expected, atol=1e-5,
                                   err_msg=str(source))


def test_a_model_with_preprocessing_gets_pixels(clips):
    keras.utils.set_random_seed(3)
    model = SqueezeTime(num_classes=3, classifier_activation=None, **TINY)
    predictor = load_predictor(model)
    assert predictor.config.include_preprocessing is True
    np.testing.assert_array_equal(predictor.model_inputs(clips), clips)
    np.testing.assert_allclose(predictor.predict_clips(clips),
                               _softmax(np.asarray(model(clips), np.float64)), atol=1e-5)


def test_a_backbone_cannot_predict_classes():
    """Its pooled features (batch, 512) were taken for 512 class scores when the backbone
    was wrapped in a model of its own."""
    backbone = SqueezeTime(include_top=False, pooling="avg", **TINY)
    clip = keras.Input((4, 32, 32, 3))
    with pytest.raises(ValueError, match=r"^squeezetime: its output is pooled features "
                                         r".*\(None, 512\)"):  # the model named once
        load_predictor(backbone)
    with pytest.raises(ValueError, match=r"wrapped has no classification head .*\(None, 512\)"):
        load_predictor(keras.Model(clip, backbone(clip), name="wrapped"))


def test_a_non_square_model_is_run_square_when_asked(clips):
    model = SqueezeTime(num_classes=3, **{**TINY, "input_shape": (4, 32, 48, 3)})
    with pytest.raises(ValueError, match=r"input is 32x48 px.*square.*image_size="):
        load_predictor(model)
    predictor = load_predictor(model, image_size=32)
    assert predictor.settings.image_size == 32
    assert predictor.predict_clips(clips).shape == (3, 3)


def test_a_predictor_given_new_labels_keeps_its_settings():
    """Labels alone re-derived the clip settings from the configuration, dropping the
    predictor's explicit frame interval and short side."""
    model = SqueezeTime(num_classes=3, **TINY)
    predictor = load_predictor(model, frame_interval=2, short_side=40)
    relabelled = load_predictor(predictor, labels=np.array(["a", "b", "c"]))
    assert relabelled.settings == predictor.settings
    assert relabelled.class_names == ["a", "b", "c"]
    # A new size alone keeps the interval; the short side follows the configuration's ratio.
    resized = load_predictor(predictor, image_size=48)
    assert resized.settings == predictor.config.clip_settings(frame_interval=2, image_size=48)
    assert resized.settings.frame_interval == 2
