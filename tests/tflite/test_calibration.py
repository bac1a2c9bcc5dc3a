"""Calibration and evaluation clips from video lists and TFRecord patterns."""

from __future__ import annotations

import numpy as np
import pytest

FRAMES, SIZE = 4, 64


def _settings():
    from keras_squeezetime.model_config import ClipSettings

    return ClipSettings(frames=FRAMES, frame_interval=2, image_size=SIZE, short_side=SIZE)


def test_calibration_errors(tmp_path):
    from keras_squeezetime.tflite.calibration import load_clips

    with pytest.raises(FileNotFoundError, match="No TFRecord files match"):
        load_clips(str(tmp_path / "nothing-*.tfrecord"), _settings())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clips(str(tmp_path / "missing_list.txt"), _settings())


def test_too_few_calibration_clips(video_dataset):
    from keras_squeezetime.tflite.calibration import calibration_clips

    with pytest.raises(ValueError, match="gives 8 clips; int8 calibration needs at least 32"):
        calibration_clips(str(video_dataset / "val_list.txt"), _settings())
    clips = calibration_clips(str(video_dataset / "val_list.txt"), _settings(), min_clips=8)
    assert clips.shape == (8, FRAMES, SIZE, SIZE, 3) and clips.dtype == np.float32
