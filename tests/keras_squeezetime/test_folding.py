"""BN folding: the inference graph computes the official function with no BN left."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, fold_batch_norm
from tests.helpers.parity import LOGITS_TOLERANCE
from tests.helpers.parity import relative_error as _relative_error


def test_folded_parity_model_matches_official(parity, tmp_path):
    config = parity["config"]
    model = SqueezeTime(
        input_shape=(config["frames"], *config["input_hw"], 3), width_multiplier=0.25,
        num_classes=10, classifier_activation=None, include_preprocessing=False,
        weights=parity["pth"],
    )
    folded = fold_batch_norm(model)
    assert not [l for l in folded._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    # 104 BNs (4 of them per block's moving statistics pair) are gone: far fewer variables.
    assert len(folded.weights) < len(model.weights) // 2
    logits = folded.predict(parity["video"], verbose=0)
    assert _relative_error(logits, parity["logits"]) <= LOGITS_TOLERANCE
    folded.save(tmp_path / "folded.keras")
    restored = keras.saving.load_model(tmp_path / "folded.keras", safe_mode=True)
    np.testing.assert_array_equal(restored.predict(parity["video"], verbose=0), logits)


def test_folded_preprocessing_matches_official_on_raw_pixels(parity):
    """The pixel normalisation moved into the stem (border windows included) keeps parity."""
    from keras_squeezetime.layers.normalization import PIXEL_MEAN, PIXEL_STD

    config = parity["config"]
    model = SqueezeTime(
        input_shape=(config["frames"], *config["input_hw"], 3), width_multiplier=0.25,
        num_classes=10, classifier_activation=None, weights=parity["pth"],
    )
    folded = fold_batch_norm(model)
    assert folded.get_layer("normalization").folded
    assert folded.get_layer("stem_bias").bias.shape[:2] == folded.get_layer("stem_conv").output.shape[1:3]
    pixels = parity["video"] * np.asarray(PIXEL_STD) + np.asarray(PIXEL_MEAN)
    assert _relative_error(folded.predict(pixels, verbose=0), parity["logits"]) <= LOGITS_TOLERANCE
    unfolded_input = fold_batch_norm(model, fold_preprocessing=False)
    assert not unfolded_input.get_layer("normalization").folded
    assert "stem_bias" not in {layer.name for layer in unfolded_input.layers}


def _logits(model, clip):
    head = model.get_layer("head")
    activation, head.activation = head.activation, keras.activations.linear
    try:  # a direct call: predict() would cache a function traced with the linear head
        return np.asarray(model(clip, training=False))
    finally:
        head.activation = activation


def test_folding_keeps_preprocessing_softmax_and_downsampling_paths():
    keras.utils.set_random_seed(0)
    model = SqueezeTime(input_shape=(4, 64, 64, 3), width_multiplier=0.25, num_classes=5)
    rng = np.random.default_rng(0)
    # Non-trivial statistics everywhere, so that every folded term matters, near the
    # statistics of real activations (taken from a batch, then perturbed) so the random
    # 16-block stack neither grows logits to where float rounding shows (~1e-4) nor fades
    # the input out, whatever the scale of the initial weights.
    bns = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.0
    model(rng.uniform(0, 255, (8, 4, 64, 64, 3)).astype("float32"), training=True)
    for layer in bns:
        n = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.25, n))
        layer.beta.assign(rng.normal(0, 0.2, n))
        layer.moving_mean.assign(layer.moving_mean + rng.normal(0, 0.2, n) * np.sqrt(
            layer.moving_variance))
        layer.moving_variance.assign(layer.moving_variance * rng.uniform(0.5, 2.0, n))
    clip = rng.uniform(0, 255, (2, 4, 64, 64, 3)).astype("float32")
    folded = fold_batch_norm(model)
    expected = _logits(model, clip)
    assert _relative_error(_logits(folded, clip), expected) <= 1e-5
    assert np.ptp(expected, axis=0).max() > 1e-2 * np.abs(expected).max()  # depends on the clip
    np.testing.assert_allclose(folded.predict(clip, verbose=0).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="already folded"):
        fold_batch_norm(folded)
