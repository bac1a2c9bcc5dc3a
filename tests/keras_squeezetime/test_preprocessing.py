"""`with_preprocessing` and `takes_pixels`: a model built without its normalisation gets it
back, same function on pixels as the original on `preprocess_input`'s output."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, fold_batch_norm, preprocess_input
from keras_squeezetime.preprocessing import takes_pixels, with_preprocessing
from tests import helpers

FRAMES, SIZE = 4, 64


@pytest.fixture(scope="module")
def models():
    """`(pixel model, the same weights built with include_preprocessing=False)`: the
    discriminating test model (its answers depend on the clip)."""
    pixels = helpers.discriminating_model(frames=FRAMES, size=SIZE, seed=3)
    normalised = helpers.tiny_squeezetime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=4,
                                          include_preprocessing=False)
    for layer in pixels.layers:
        if layer.weights:
            normalised.get_layer(layer.name).set_weights(layer.get_weights())
    return pixels, normalised


@pytest.fixture(scope="module")
def clips():
    return helpers.varied_clips(6, FRAMES, SIZE, seed=21)


def test_the_copy_takes_pixels_and_computes_the_original(models, clips):
    pixels, normalised = models
    reference = helpers.assert_input_dependent(normalised, preprocess_input(clips))
    assert not takes_pixels(normalised) and takes_pixels(pixels)
    restored = with_preprocessing(normalised)
    assert takes_pixels(restored) and restored is not normalised
    assert [layer.name for layer in restored.layers[:3]] == ["video", "normalization", "squeeze"]
    np.testing.assert_allclose(helpers.logits(restored, clips), reference, rtol=1e-5, atol=1e-5)
    # Its own weights: the original is untouched and independent of the copy.
    assert not takes_pixels(normalised)
    assert all(a is not b for a, b in zip(restored.weights, normalised.weights))


def test_the_copy_folds_and_saves(models, clips, tmp_path):
    _, normalised = models
    reference = helpers.logits(normalised, preprocess_input(clips))
    folded = fold_batch_norm(with_preprocessing(normalised))
    np.testing.assert_allclose(helpers.logits(folded, clips), reference, rtol=1e-4, atol=1e-4)
    path = tmp_path / "restored.keras"
    with_preprocessing(normalised).save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(helpers.logits(loaded, clips), reference, rtol=1e-5, atol=1e-5)


def test_a_pixel_model_is_returned_as_it_is(models):
    pixels, _ = models
    assert with_preprocessing(pixels) is pixels
    folded = fold_batch_norm(pixels)
    assert takes_pixels(folded) and with_preprocessing(folded) is folded


def test_a_nested_backbone_without_normalisation_is_named():
    backbone = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), width_multiplier=0.25,
                           include_top=False, pooling="avg", include_preprocessing=False,
                           pos_embed_sizes=(16, 8, 4, 2))
    inputs = keras.Input((FRAMES, SIZE, SIZE, 3))
    outputs = keras.layers.Dense(2)(backbone(inputs))
    wrapper = keras.Model(inputs, outputs, name="my_classifier")
    with pytest.raises(ValueError, match="my_classifier takes normalised input .* "
                                         "include_preprocessing=True"):
        with_preprocessing(wrapper)
