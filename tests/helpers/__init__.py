"""Shared test helpers (`from tests.helpers import ...`), in the keras-hub manner.

- `tiny_squeezetime`, `TINY`: the small model configuration of the tests;
- `discriminating_model`, `varied_clips`, `assert_input_dependent`, `logits`: a test model
  whose answers depend on its input, clips that differ, and the guard for both;
- `calibrate_batch_norm`, `damp_batch_norm`: BN statistics for random models (from data;
  damped random ones);
- `run_layer_test`: registration, config round trip, shapes, every weight trainable;
- `run_model_saving_test`: `.keras` (safe mode) and `.weights.h5` round trips;
- `decode_native`: a video's frames decoded straight with PyAV, as an independent reference;
- `parity` (module): tolerances against the official model, from measured errors.
"""

from tests.helpers.layer_testing import run_layer_test
from tests.helpers.models import (
    TINY,
    assert_input_dependent,
    calibrate_batch_norm,
    damp_batch_norm,
    discriminating_model,
    logits,
    tiny_squeezetime,
    varied_clips,
)
from tests.helpers.saving import run_model_saving_test
from tests.helpers.videos import decode_native

__all__ = [
    "TINY",
    "assert_input_dependent",
    "calibrate_batch_norm",
    "damp_batch_norm",
    "decode_native",
    "discriminating_model",
    "logits",
    "run_layer_test",
    "run_model_saving_test",
    "tiny_squeezetime",
    "varied_clips",
]
