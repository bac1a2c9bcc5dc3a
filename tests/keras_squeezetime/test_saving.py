"""`.keras` round trip with safe_mode and SavedModel export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.helpers import (
    assert_input_dependent,
    damp_batch_norm,
    discriminating_model,
    run_model_saving_test,
    tiny_squeezetime,
    varied_clips,
)


def test_keras_file_round_trip_is_exact_with_safe_mode():
    model = tiny_squeezetime(input_shape=(4, 64, 64, 3), num_classes=6, dropout_rate=0.5)
    # Random BN statistics, so a save that dropped them would change outputs.
    damp_batch_norm(model, seed=0)
    run_model_saving_test(model, varied_clips(2, frames=4, seed=0))


def test_saved_model_export_serves(tmp_path):
    """The exported `serve` function gives each clip the model's own probabilities, on a
    model whose top class changes from clip to clip (a served function that ignored its
    input, or mixed up the clips of a batch, fails)."""
    model = discriminating_model(frames=4, size=64, num_classes=4, seed=1)
    clips = varied_clips(8, frames=4, seed=1)
    assert_input_dependent(model, clips)
    expected = np.asarray(model(clips, training=False))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    actual = served.serve(tf.constant(clips)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
