"""`records`: records a TFRecord file holds, counted from its framing, and its framing checked."""

from __future__ import annotations

import tensorflow as tf

from keras_squeezetime.training.records import count_records, record_file_problem


def _write(path, payloads) -> bytes:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for payload in payloads:
            writer.write(payload)
    return path.read_bytes()


def test_counts_match_the_reader_and_survive_damage(tmp_path):
    payloads = [b"x" * n for n in (0, 1, 300, 70000, 5)]
    raw = _write(tmp_path / "good.tfrecord", payloads)
    assert count_records(str(tmp_path / "good.tfrecord")) == 5
    assert sum(1 for _ in tf.data.TFRecordDataset(str(tmp_path / "good.tfrecord"))) == 5

    # A byte changed inside record 2's data: the reader stops there, the count does not.
    damaged = bytearray(raw)
    damaged[(12 + 0 + 4) + (12 + 1 + 4) + 12 + 100] ^= 0xFF
    (tmp_path / "damaged.tfrecord").write_bytes(bytes(damaged))
    assert count_records(str(tmp_path / "damaged.tfrecord")) == 5

    # Cut inside record 3's data: records 0-2 and the partial record 3.
    cut = (12 + 0 + 4) + (12 + 1 + 4) + (12 + 300 + 4) + 12 + 500
    (tmp_path / "cut.tfrecord").write_bytes(raw[:cut])
    assert count_records(str(tmp_path / "cut.tfrecord")) == 4
    (tmp_path / "header.tfrecord").write_bytes(raw[:5])  # not even one full header
    assert count_records(str(tmp_path / "header.tfrecord")) == 1
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    assert count_records(str(tmp_path / "empty.tfrecord")) == 0


def test_record_file_problem_checks_the_framing_tensorflow_writes(tmp_path):
    payloads = [b"x" * n for n in (70000, 0, 1, 300, 5)]
    raw = _write(tmp_path / "good.tfrecord", payloads)
    # TensorFlow's own writer computed the header checksum (of length 70000): ours must agree.
    assert record_file_problem(str(tmp_path / "good.tfrecord")) is None
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    assert record_file_problem(str(tmp_path / "empty.tfrecord")) is None
    # Only the first header is judged: damage further in is left to the reader.
    (tmp_path / "cut.tfrecord").write_bytes(raw[:(12 + 70000 + 4) + 12 + 100])
    assert record_file_problem(str(tmp_path / "cut.tfrecord")) is None
    (tmp_path / "short.tfrecord").write_bytes(raw[:7])
    assert record_file_problem(str(tmp_path / "short.tfrecord")) == (
        "it ends inside its first record header")
    header = bytearray(raw)
    header[0] ^= 0x01  # record 0's length: its header checksum fails
    (tmp_path / "header.tfrecord").write_bytes(bytes(header))
    assert record_file_problem(str(tmp_path / "header.tfrecord")) == (
        "its first record header fails its checksum")
    (tmp_path / "list.tfrecord").write_text("videos/a.mp4 0\n")
    assert record_file_problem(str(tmp_path / "list.tfrecord")) == (
        "its first record header fails its checksum")
