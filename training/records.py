"""The on-disk clip format: one `tf.train.SequenceExample` per video.

The keys follow TF Model Garden's video datasets
(`official/vision/dataloaders/video_input.py`) so records interchange with it:
frames are JPEG bytes in the feature list `image/encoded`, the label is the
context feature `clip/label/index`.
"""

from __future__ import annotations

import struct
from typing import Iterator, Sequence

import tensorflow as tf

IMAGE_KEY = "image/encoded"  # feature list: one JPEG per stored frame
LABEL_INDEX_KEY = "clip/label/index"  # context int64
LABEL_TEXT_KEY = "clip/label/text"  # context bytes
MEDIA_ID_KEY = "clip/media_id"  # context bytes: video id (file stem or YouTube id)
FRAME_RATE_KEY = "clip/frame_rate"  # context float: fps of the stored frames
ORIGINAL_NUM_FRAMES_KEY = "clip/original_num_frames"  # context int64: frames in the source video
ORIGINAL_FRAME_RATE_KEY = "clip/original_frame_rate"  # context float: fps of the source video

CONTEXT_FEATURES = {
    LABEL_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
    LABEL_TEXT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    FRAME_RATE_KEY: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    ORIGINAL_NUM_FRAMES_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    ORIGINAL_FRAME_RATE_KEY: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
}
SEQUENCE_FEATURES = {IMAGE_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}


def make_sequence_example(
    jpeg_frames: Sequence[bytes],
    label_index: int,
    label_text: str = "",
    media_id: str = "",
    frame_rate: float = 0.0,
    original_num_frames: int = 0,
    original_frame_rate: float = 0.0,
) -> tf.train.SequenceExample:
    """Builds the record of one clip from its JPEG-encoded frames."""
    if not jpeg_frames:
        raise ValueError(f"Clip {media_id!r} has no frames to store.")

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def _float(value: float) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))

    context = tf.train.Features(
        feature={
            LABEL_INDEX_KEY: _int(label_index),
            LABEL_TEXT_KEY: _bytes(label_text.encode("utf-8")),
            MEDIA_ID_KEY: _bytes(media_id.encode("utf-8")),
            FRAME_RATE_KEY: _float(frame_rate),
            ORIGINAL_NUM_FRAMES_KEY: _int(original_num_frames),
            ORIGINAL_FRAME_RATE_KEY: _float(original_frame_rate),
        }
    )
    frames = tf.train.FeatureList(feature=[_bytes(jpeg) for jpeg in jpeg_frames])
    return tf.train.SequenceExample(
        context=context, feature_lists=tf.train.FeatureLists(feature_list={IMAGE_KEY: frames})
    )


def parse_sequence_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized record in-graph into `{"frames": [N] JPEG strings, "label", ...}`."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=CONTEXT_FEATURES, sequence_features=SEQUENCE_FEATURES
    )
    return {
        "frames": sequence[IMAGE_KEY],
        "label": tf.cast(context[LABEL_INDEX_KEY], tf.int32),
        "label_text": context[LABEL_TEXT_KEY],
        "media_id": context[MEDIA_ID_KEY],
        "frame_rate": context[FRAME_RATE_KEY],
        "original_num_frames": context[ORIGINAL_NUM_FRAMES_KEY],
    }


def count_records(path: str) -> int:
    """Records a TFRecord file holds, from its length headers alone (no payload is read).

    A damaged payload (CRC mismatch) still counts: it is a record the reader will reject.
    A file cut short counts its last, partial record. A length header that points past the
    end of the file ends the count there (what follows cannot be framed).
    """
    size = tf.io.gfile.stat(path).length
    with tf.io.gfile.GFile(path, "rb") as handle:
        return sum(1 for _ in _headers(handle, size))


# TFRecord framing: uint64 length, uint32 masked CRC of the length, data, uint32 CRC of the data.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4


def record_file_problem(path: str) -> str | None:
    """Why `path` is not a TFRecord file, judged by its first record header, or None.

    Reads 12 bytes, cheap enough for every file of a pattern: it tells a text or video file
    from a TFRecord (random bytes pass the header checksum once in 2**32); an empty file is
    a valid file of no record. Damage further in is found by reading
    (`pipeline.first_corrupt_record`).
    """
    size = tf.io.gfile.stat(path).length
    if not size:
        return None
    with tf.io.gfile.GFile(path, "rb") as handle:
        header = handle.read(min(_HEADER_BYTES, size))
    if len(header) < _HEADER_BYTES:
        return "it ends inside its first record header"
    length, checksum = struct.unpack("<QI", header)
    if _masked_crc32c(header[:8]) != checksum:
        return "its first record header fails its checksum"
    return None


def _headers(handle, size: int) -> Iterator[tuple[int, bytes]]:
    """`(offset, header)` of each record, found by following the length headers of a file
    of `size` bytes; the last header is partial when the file ends inside it."""
    offset = 0
    while offset < size:
        handle.seek(offset)
        header = handle.read(min(_HEADER_BYTES, size - offset))
        yield offset, header
        if len(header) < _HEADER_BYTES:
            return
        offset += _HEADER_BYTES + int.from_bytes(header[:8], "little") + _FOOTER_BYTES


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of `data`, masked as TFRecord headers store it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
