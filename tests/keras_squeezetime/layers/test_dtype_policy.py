"""Quantised sub-layers survive `.keras` save and load (layers/dtype_policy.py)."""

from __future__ import annotations

import keras
import numpy as np

from keras_squeezetime import SqueezeTime
from tests.helpers import damp_batch_norm, varied_clips

TINY_FAST = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


def _quantized(model: keras.Model) -> list[str]:
    return sorted(layer.path for layer in model._flatten_layers()
                  if layer.quantization_mode == "int8")


def test_int8_quantized_model_round_trips_through_keras_file(tmp_path):
    model = SqueezeTime(**TINY_FAST, num_classes=4, classifier_activation=None)
    damp_batch_norm(model, seed=0)
    clips = varied_clips(2, frames=4, size=32, seed=0)
    float_logits = model.predict(clips, verbose=0)
    model.quantize("int8")
    expected = model.predict(clips, verbose=0)
    # The Dense layers inside the temporal focus modules and the head are quantised.
    assert "head/fc" in _quantized(model) and "stage1_block1/ctl/temporal_focus/fc1" in \
        _quantized(model)
    assert not np.array_equal(expected, float_logits)  # quantisation changed something

    model.save(tmp_path / "int8.keras")
    restored = keras.saving.load_model(tmp_path / "int8.keras", safe_mode=True)
    assert _quantized(restored) == _quantized(model)
    np.testing.assert_array_equal(restored.predict(clips, verbose=0), expected)
    # Saved again from the loaded model (which holds the policy map), still the same.
    restored.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)
    assert _quantized(again) == _quantized(model)
    np.testing.assert_array_equal(again.predict(clips, verbose=0), expected)
