"""Quantised sub-layers survive `.keras` save and load (layers/dtype_policy.py)."""

from __future__ import annotations

import keras
import numpy as np

from keras_squeezetime import SqueezeTime
from tests.helpers import damp_batch_norm, varied_clips

# Outputs by direct calls: `predict` first traces a function for each model, which costs
# several calls here and is not what these tests check.
TINY_FAST = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))
# Dense layers one and three composites deep, two siblings, in two blocks: the paths the
# saved maps must give back. Not all 33 (each takes ~1 s to quantise); the others staying
# float also shows that loading quantises only what was.
QUANTISED = ["head/fc", "stage1_block1/ctl/temporal_focus/fc1",
             "stage4_block3/ctl/temporal_focus/fc1", "stage4_block3/ctl/temporal_focus/fc2"]


def _quantized(model: keras.Model) -> list[str]:
    return sorted(layer.path for layer in model._flatten_layers()
                  if layer.quantization_mode == "int8")


def test_int8_quantized_model_round_trips_through_keras_file(tmp_path):
    model = SqueezeTime(**TINY_FAST, num_classes=4, classifier_activation=None)
    damp_batch_norm(model, seed=0)
    clips = varied_clips(2, frames=4, size=32, seed=0)
    float_logits = np.asarray(model(clips))
    model.quantize("int8", filters=lambda layer: layer.path in QUANTISED)
    expected = np.asarray(model(clips))
    # Dense layers inside the temporal focus modules and the head are quantised.
    assert _quantized(model) == sorted(QUANTISED)
    assert not np.array_equal(expected, float_logits)  # quantisation changed something

    model.save(tmp_path / "int8.keras")
    restored = keras.saving.load_model(tmp_path / "int8.keras", safe_mode=True)
    assert _quantized(restored) == _quantized(model)
    np.testing.assert_array_equal(np.asarray(restored(clips)), expected)
    # Saved again from the loaded model (which holds the policy map), still the same.
    restored.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)
    assert _quantized(again) == _quantized(model)
    np.testing.assert_array_equal(np.asarray(again(clips)), expected)
