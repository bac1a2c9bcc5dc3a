"""Calibration and evaluation clips from video lists and TFRecord patterns."""

from __future__ import annotations

import shutil

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


def _write_records(path, labels) -> bytes:
    """Real clip records (12 JPEG frames of 64 px each) at `path`; returns the file's bytes."""
    import tensorflow as tf

    from keras_squeezetime.training.records import make_sequence_example

    with tf.io.TFRecordWriter(str(path)) as writer:
        for label in labels:
            jpegs = [tf.io.encode_jpeg(np.full((SIZE, SIZE, 3), 20 * i, np.uint8)).numpy()
                     for i in range(12)]
            writer.write(make_sequence_example(jpegs, label).SerializeToString())
    return path.read_bytes()


def test_a_list_not_named_txt_is_named_not_read_as_records(video_dataset, tmp_path):
    """A video list named `.lst` is told apart from a TFRecord by its content."""
    from keras_squeezetime.tflite.calibration import load_clips

    listing = tmp_path / "list.lst"
    shutil.copy(video_dataset / "val_list.txt", listing)
    with pytest.raises(ValueError) as raised:
        load_clips(str(listing), _settings())
    assert str(raised.value) == (
        f"{listing} is a text file, not a TFRecord file; a video list must be named *.txt to "
        "be read as one (rename it), and TFRecords must be valid files written by "
        "squeezetime-prepare.")


def test_files_that_are_not_valid_records_are_named(video_dataset, tmp_path):
    """A video named as a record file, a truncated record file and a corrupt record each
    fail with a ValueError naming the file (or the pattern) and what was expected."""
    from keras_squeezetime.tflite.calibration import load_clips
    from keras_squeezetime.training.records import record_file_problem

    good = tmp_path / "good" / "clips.tfrecord"
    good.parent.mkdir()
    data = _write_records(good, [0, 1, 2])
    assert record_file_problem(str(good)) is None
    clips, labels = load_clips(str(good), _settings())
    assert clips.shape == (3, FRAMES, SIZE, SIZE, 3) and labels.tolist() == [0, 1, 2]

    video = tmp_path / "video.tfrecord"
    shutil.copy(next((video_dataset / "videos").rglob("*.mp4")), video)
    with pytest.raises(ValueError, match=rf"^{video} is not a valid TFRecord file: its first "
                                         r"record header fails its checksum; TFRecords must be "
                                         r"valid .*a video list must end in \.txt\.$"):
        load_clips(str(video), _settings())

    # Its first records are sound: TensorFlow fails mid-file; the file and record are named.
    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(good, shards / "a.tfrecord")
    (shards / "b.tfrecord").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=rf"^{shards / 'b.tfrecord'}: record 2 is corrupt "
                                         r"\(truncated record at \d+.*\); TFRecords must be"):
        load_clips(str(shards / "*.tfrecord"), _settings())

    # A damaged payload passes the header checks: found by reading, as evaluation does.
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=rf"^{corrupt}: record 1 is corrupt "
                                         r"\(corrupted record at \d+\); TFRecords must be valid"):
        load_clips(str(corrupt), _settings())
