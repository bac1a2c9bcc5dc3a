"""BN folding: the inference graph computes the official function with no BN left."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, fold_batch_norm
from tests.helpers import damp_batch_norm, varied_clips
from tests.helpers.parity import LOGITS_TOLERANCE
from tests.helpers.parity import relative_error as _relative_error

# Outputs by direct calls: `predict` first traces a function for each model, which costs
# several calls here and is not what these tests check.


def test_folded_parity_model_matches_official(parity, tmp_path):
    config = parity["config"]
    model = SqueezeTime(
        input_shape=(config["frames"], *config["input_hw"], 3), width_multiplier=0.25,
        num_classes=10, classifier_activation=None, include_preprocessing=False,
        weights=parity["pth"],
    )
    folded = fold_batch_norm(model)
    assert not [layer for layer in folded._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization)]
    # 104 BNs (4 of them per block's moving statistics pair) are gone: far fewer variables.
    assert len(folded.weights) < len(model.weights) // 2
    logits = np.asarray(folded(parity["video"]))
    assert _relative_error(logits, parity["logits"]) <= LOGITS_TOLERANCE
    folded.save(tmp_path / "folded.keras")
    restored = keras.saving.load_model(tmp_path / "folded.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(restored(parity["video"])), logits)


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
    assert (folded.get_layer("stem_bias").bias.shape[:2]
            == folded.get_layer("stem_conv").output.shape[1:3])
    pixels = parity["video"] * np.asarray(PIXEL_STD) + np.asarray(PIXEL_MEAN)
    assert _relative_error(np.asarray(folded(pixels)), parity["logits"]) <= LOGITS_TOLERANCE
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
    bns = [layer for layer in model._flatten_layers()
           if isinstance(layer, keras.layers.BatchNormalization)]
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
    np.testing.assert_allclose(np.asarray(folded(clip)).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="already folded"):
        fold_batch_norm(folded)


TINY_FAST = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(1)
    model = SqueezeTime(**TINY_FAST, num_classes=3, classifier_activation=None)
    damp_batch_norm(model, seed=1)
    return model


def test_folding_ignores_a_mixed_global_policy(small_model):
    """The layers folding creates take the model's policy, not the global one."""
    clips = varied_clips(2, frames=4, size=32, seed=2)
    expected = np.asarray(fold_batch_norm(small_model)(clips))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        folded = fold_batch_norm(small_model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # (The input layer computes nothing; Keras gives it the global policy.)
    policies = {layer.dtype_policy.name for layer in folded._flatten_layers(include_self=False)
                if not isinstance(layer, keras.layers.InputLayer)}
    assert policies == {"float32"}, policies
    np.testing.assert_array_equal(np.asarray(folded(clips)), expected)


def test_folding_ignores_a_channels_first_global_setting(small_model):
    clips = varied_clips(2, frames=4, size=32, seed=3)
    expected = np.asarray(fold_batch_norm(small_model)(clips))
    keras.config.set_image_data_format("channels_first")
    try:
        folded = fold_batch_norm(small_model)
        logits = np.asarray(folded(clips))
    finally:
        keras.config.set_image_data_format("channels_last")
    np.testing.assert_array_equal(logits, expected)


def test_nested_squeezetime_gets_a_clear_error(small_model):
    clip = keras.Input(TINY_FAST["input_shape"])
    outer = keras.Model(clip, keras.layers.Softmax()(small_model(clip)), name="outer")
    with pytest.raises(ValueError, match=r"outer holds SqueezeTime model\(s\) \['squeezetime'\] "
                                         r"as layers.*model.get_layer\('squeezetime'\)"):
        fold_batch_norm(outer)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="other")
    with pytest.raises(ValueError, match=r"other has no 'stem_bn' layer: it is not a SqueezeTime"):
        fold_batch_norm(other)


def test_quantized_model_is_refused():
    # Folding writes float kernels, which int8 ones would take silently wrong. One Dense
    # inside a block quantised as `model.quantize` does it (each Dense takes ~1 s: the
    # whole model's 33 were most of this test's time) is a quantised model already.
    model = SqueezeTime(**TINY_FAST, num_classes=3)
    model.get_layer("stage1_block1").ctl.temporal_focus.fc1.quantize("int8")
    with pytest.raises(ValueError, match=r"is quantised .*fold the float model first"):
        fold_batch_norm(model)
