"""The shared test models: the discriminating one passes its guard, an input-blind one fails."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import (
    assert_input_dependent,
    damp_batch_norm,
    discriminating_model,
    logits,
    tiny_squeezetime,
    varied_clips,
)


def test_discriminating_model_spreads_clips_over_its_classes():
    model = discriminating_model(num_classes=4, seed=0)
    for seed in (1, 2):
        scores = assert_input_dependent(model, varied_clips(16, seed=seed))
        assert np.bincount(scores.argmax(1), minlength=4).max() <= 10  # no class takes all
    # Probabilities are the softmax of the logits the guard looked at.
    clips = varied_clips(3, seed=3)
    expected = np.exp(logits(model, clips))
    np.testing.assert_allclose(np.asarray(model(clips)), expected / expected.sum(1, keepdims=True),
                               atol=1e-6)


def test_the_guard_rejects_a_model_that_ignores_its_input():
    blind = tiny_squeezetime()
    damp_batch_norm(blind, seed=4)
    with pytest.raises(AssertionError, match="must discriminate|must vary"):
        assert_input_dependent(blind, varied_clips(16, seed=1))
