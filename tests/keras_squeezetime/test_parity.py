"""Numerical parity with the official PyTorch model (golden outputs in tests/fixtures)."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.weights.checkpoint import load_state_dict
from keras_squeezetime.weights.official_mapping import apply_official_state_dict, official_targets

from tests.helpers.parity import (
    FEATURES_TOLERANCE,
    LARGE_FEATURES_TOLERANCE,
    LOGITS_TOLERANCE,
    relative_error,
)


def _parity_model(parity, **kwargs):
    config = parity["config"]
    return SqueezeTime(
        input_shape=(config["frames"], *config["input_hw"], 3),
        width_multiplier=config["widen_factor"],
        pos_embed_sizes=tuple(config["pos_dim"]),
        include_preprocessing=False,
        **kwargs,
    )


def test_features_match_official(parity):
    model = _parity_model(parity, include_top=False, weights=parity["pth"])
    features = model.predict(parity["video"], verbose=0)
    assert features.shape == parity["features"].shape
    assert relative_error(features, parity["features"]) <= FEATURES_TOLERANCE


def test_logits_match_official(parity):
    model = _parity_model(
        parity, num_classes=parity["config"]["num_classes"], classifier_activation=None,
        weights=parity["pth"],
    )
    logits = model.predict(parity["video"], verbose=0)
    assert relative_error(logits, parity["logits"]) <= LOGITS_TOLERANCE
    # Softmax head: the softmax of the official logits (computed here in float64).
    probs_model = _parity_model(parity, num_classes=10, weights=parity["pth"])
    probs = probs_model.predict(parity["video"], verbose=0)
    shifted = parity["logits"].astype(np.float64)
    shifted = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, shifted / shifted.sum(axis=1, keepdims=True), atol=1e-4)


def test_every_key_of_the_fixture_is_used(parity):
    model = _parity_model(parity, num_classes=10)
    state = load_state_dict(parity["pth"])
    report = apply_official_state_dict(model, state, source=parity["pth"])
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    assert set(report["loaded"]) == expected and not report["skipped"]


def test_official_k400_key_list_maps_onto_full_model(parity_dir):
    """Every key of the released K400 checkpoint has a Keras variable of the same size."""
    model = SqueezeTime()
    targets = official_targets(model)
    used = set()
    for line in (parity_dir / "official_k400_checkpoint_keys.txt").read_text().splitlines():
        match = re.fullmatch(r"(\S+) \(([\d, ]*)\)", line.strip())
        assert match, line
        key, shape = match.group(1), tuple(int(v) for v in match.group(2).split(",") if v.strip())
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith("backbone.net."):
            key = key[len("backbone.net."):]
        else:
            assert key.startswith("cls_head.fc_cls."), key
            key = "fc." + key.rsplit(".", 1)[1]
        assert key in targets, f"no Keras variable for {key}"
        value = np.zeros(shape, "float32")
        assert tuple(targets[key].transform(value).shape) == tuple(targets[key].variable.shape), key
        used.add(key)
    assert used == set(targets), f"Keras variables without an official key: {set(targets) - used}"


@pytest.mark.parametrize("height,width", [(286, 286), (97, 131)])
def test_sizes_beyond_multiples_of_16_match_official(parity, parity_dir, height, width):
    """HMDB51's 286 px test size, and an odd, non-square one (stem and pool round up, the
    2x2 downsampling rounds down). Input drawn as the fixture's generator drew it."""
    key = f"{height}x{width}"
    with np.load(parity_dir / "squeezetime_w0.25_f16_sizes.npz") as golden:
        features = np.transpose(golden[f"features_nchw_{key}"], (0, 2, 3, 1))
        logits = golden[f"logits_{key}"]
    index = [(286, 286), (97, 131)].index((height, width))
    clip = np.random.default_rng([286, index]).uniform(-2.0, 2.0, (1, 16, height, width, 3))
    model = SqueezeTime(input_shape=(16, height, width, 3), width_multiplier=0.25,
                        include_preprocessing=False, num_classes=10, classifier_activation=None,
                        weights=parity["pth"])
    both = keras.Model(model.input, [model.get_layer("stage4_block3").output, model.output])
    ours_features, ours_logits = (np.asarray(t) for t in both(clip.astype("float32")))
    assert ours_features.shape == features.shape
    bound = LARGE_FEATURES_TOLERANCE if height == 286 else FEATURES_TOLERANCE
    assert relative_error(ours_features, features) <= bound
    assert relative_error(ours_logits, logits) <= LOGITS_TOLERANCE
