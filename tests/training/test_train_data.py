"""`train_data`: record counts from `squeezetime-prepare`'s manifest, and the training data
of a run naming a shard that yields fewer records than its manifest says."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import tensorflow as tf

from keras_squeezetime.training.pipeline import PipelineConfig
from keras_squeezetime.training.records import make_sequence_example
from keras_squeezetime.training.train_data import count_records, manifest_counts, train_dataset

PLAIN = PipelineConfig(frames=2, frame_interval=1, image_size=16, short_side=16,
                       multiscale_crop=False, hflip=False, color_jitter=False,
                       random_erasing=0.0, shuffle_buffer=4, cycle_length=4, seed=0)


def _shard(path, labels, corrupt_record: int | None = None) -> None:
    jpeg = tf.io.encode_jpeg(np.full((16, 16, 3), 90, np.uint8)).numpy()
    payloads = [make_sequence_example([jpeg] * 4, label).SerializeToString() for label in labels]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for payload in payloads:
            writer.write(payload)
    if corrupt_record is not None:
        data = bytearray(path.read_bytes())
        start = sum(8 + 4 + len(p) + 4 for p in payloads[:corrupt_record]) + 8 + 4
        data[start + 20] ^= 0xFF  # in the payload: its checksum fails
        path.write_bytes(bytes(data))


def _manifest(folder, counts: dict[str, int], classes: list | None = None) -> None:
    shards = [{"name": name, "records": records} for name, records in counts.items()]
    (folder / "manifest.json").write_text(json.dumps({"shards": shards,
                                                      "classes": classes or []}))


def test_manifest_counts_per_file_or_none(tmp_path):
    for name in ("a", "b", "c"):
        _shard(tmp_path / f"{name}.tfrecord", [0, 1])
    files = [str(tmp_path / f"{name}.tfrecord") for name in ("a", "b")]
    assert manifest_counts(files) is None  # no manifest: count_records reads the files
    assert count_records(files)[0] == 4
    _manifest(tmp_path, {"a.tfrecord": 7, "b.tfrecord": 5},
              classes=[{"index": 0, "name": "walk", "videos": 6},
                       {"index": 1, "name": "", "videos": 6}])
    assert manifest_counts(files) == {files[0]: 7, files[1]: 5}
    # The manifest's figures, not the files'; unnamed classes are left out.
    assert count_records(files) == (12, {0: "walk"})
    assert manifest_counts(files + [str(tmp_path / "c.tfrecord")]) is None  # c not listed


def test_counting_names_a_corrupt_record_in_plain_words(tmp_path, caplog):
    """Without a manifest the files are read: a failed checksum is named by file and record,
    with TensorFlow's sentence and none of its op decorations."""
    _shard(tmp_path / "a.tfrecord", [0, 1, 2, 3], corrupt_record=2)
    with caplog.at_level("WARNING"):
        assert count_records([str(tmp_path / "a.tfrecord")])[0] == 2
    [warning] = [r.getMessage() for r in caplog.records if "is corrupt" in r.getMessage()]
    assert re.fullmatch(re.escape(f"{tmp_path / 'a.tfrecord'}: record 2 is corrupt (corrupted "
                                  "record at ") +
                        r"\d+\); training skips it and the rest of this file\.", warning), warning


def test_training_data_names_a_shard_short_of_its_manifest(tmp_path, caplog):
    _shard(tmp_path / "a.tfrecord", [0, 1, 2, 3], corrupt_record=2)
    _shard(tmp_path / "b.tfrecord", [4, 5, 6, 7])
    _manifest(tmp_path, {"a.tfrecord": 4, "b.tfrecord": 4})
    files = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    config = dataclasses.replace(PLAIN, deterministic=True)
    with caplog.at_level("WARNING"):
        labels = [int(y[0]) for _, y in train_dataset(files, 1, config).take(18)]
    # Three passes, each with a's records before the damage.
    assert sorted(labels) == sorted([0, 1, 4, 5, 6, 7] * 3)
    warnings = [r.getMessage() for r in caplog.records if "records read" in r.getMessage()]
    # Said once, not every pass.
    assert warnings == [
        f"{files[0]}: 2 of its 4 records read; the others are corrupt and training skips "
        "them (after a failed checksum, the rest of the file)."]
