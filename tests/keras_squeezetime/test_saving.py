"""`.keras` round trip with safe_mode and SavedModel export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_squeezetime import SqueezeTime
from tests.helpers import damp_batch_norm, run_model_saving_test, tiny_squeezetime, varied_clips


def test_keras_file_round_trip_is_exact_with_safe_mode():
    model = tiny_squeezetime(input_shape=(4, 64, 64, 3), num_classes=6, dropout_rate=0.5)
    # Random BN statistics, so a save that dropped them would change outputs.
    damp_batch_norm(model, seed=0)
    run_model_saving_test(model, varied_clips(2, frames=4, seed=0))


def test_saved_model_export_serves(tmp_path):
    model = SqueezeTime(input_shape=(4, 64, 64, 3), width_multiplier=0.25, num_classes=6)
    damp_batch_norm(model, seed=1)
    clip = np.random.default_rng(1).uniform(0, 255, (1, 4, 64, 64, 3)).astype("float32")
    expected = model.predict(clip, verbose=0)
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(served.serve(tf.constant(clip)).numpy(), expected, rtol=1e-5, atol=1e-6)
