"""Clips for calibration and evaluation, from TFRecord shards or mmaction video lists.

Both sources give centre clips sampled exactly as validation does (`frames` frames every
`frame_interval`, short side `short_side`, centre crop `image_size`), as float32 pixels in
[0, 255] with their integer label. A `.txt` path is read as a video list (`path label` per
line, paths relative to the list's folder); anything else as a TFRecord glob pattern, whose
files are checked to be TFRecords before any clip is read (a list under another name is
named as such, not read as a broken record).
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import numpy as np

from keras_squeezetime.model_config import ClipSettings

# Fewer clips than this cannot give stable int8 ranges: the calibrated min/max of a tensor
# would follow a handful of clips.
MIN_CALIBRATION_CLIPS = 32
DEFAULT_CALIBRATION_CLIPS = 300

logger = logging.getLogger(__name__)


def is_video_list(source: str) -> bool:
    """True when `source` names an mmaction video list rather than a TFRecord pattern."""
    return source.endswith(".txt")


def check_source(source: str) -> None:
    """Raises when `source` names no usable data, without reading any clip.

    Raises:
      FileNotFoundError: the list file is missing or the pattern matches no file.
      ValueError: a file the pattern matches is not a TFRecord (its first record header
        fails its checksum); the message names it, and says a video list must end in .txt
        when it is text.
    """
    if is_video_list(source):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"Video list {source} does not exist.")
        return
    from keras_squeezetime.training.pipeline import list_record_files
    from keras_squeezetime.training.records import record_file_problem

    # FileNotFoundError naming the pattern when nothing matches.
    for path in list_record_files(source):
        problem = record_file_problem(path)
        if problem is not None:
            raise ValueError(_not_records_message(path, problem))


def iter_clips(
    source: str, spec: ClipSettings, limit: int | None = None,
    skipped: list[str] | None = None,
) -> Iterator[tuple[np.ndarray, int]]:
    """Yields `(clip (T, S, S, 3) float32 in [0, 255], label)` centre clips, in file order.

    A listed video that is missing or does not decode is skipped with a warning naming
    it, and appended (as `"path: reason"`) to `skipped` when a list is given.

    Raises:
      FileNotFoundError: the list file is missing or the pattern matches no file.
      ValueError: a file of the pattern is not a valid TFRecord (named, see `check_source`),
        or a record cannot be read as a clip.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1; got {limit}.")
    check_source(source)
    skipped = [] if skipped is None else skipped
    clips = (_list_clips(source, spec, skipped) if is_video_list(source)
             else _record_clips(source, spec))
    for count, item in enumerate(clips):
        if limit is not None and count >= limit:
            return
        yield item


def load_clips(
    source: str, spec: ClipSettings, limit: int | None = None,
    skipped: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All clips of `iter_clips` stacked: `(N, T, S, S, 3)` float32 and `(N,)` int64 labels.

    Raises:
      ValueError: no clip could be read (the message names the videos skipped).
    """
    clips, labels = [], []
    skipped = [] if skipped is None else skipped
    for clip, label in iter_clips(source, spec, limit, skipped):
        clips.append(clip)
        labels.append(label)
    if not clips:
        raise ValueError(f"{source} holds no readable clip{_skipped_note(skipped)}")
    return np.stack(clips), np.asarray(labels, dtype=np.int64)


def calibration_clips(
    source: str,
    spec: ClipSettings,
    num_clips: int = DEFAULT_CALIBRATION_CLIPS,
    min_clips: int = MIN_CALIBRATION_CLIPS,
) -> np.ndarray:
    """Up to `num_clips` clips for int8 calibration; raises if fewer than `min_clips` exist.

    Unreadable videos of a list are skipped with a warning while enough clips remain.
    """
    skipped: list[str] = []
    clips, _ = load_clips(source, spec, num_clips, skipped)
    if len(clips) < min_clips:
        raise ValueError(
            f"Representative data {source} gives {len(clips)} clips; int8 calibration needs at "
            f"least {min_clips} (asked for {num_clips}){_skipped_note(skipped)} Give more "
            "clips, or accept a rougher calibration with a lower minimum (`min_clips`, "
            "squeezetime-export --min-representative-clips)."
        )
    return clips


def _skipped_note(skipped: list[str]) -> str:
    if not skipped:
        return "."
    shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    return f"; {len(skipped)} listed videos could not be read: {shown}."


def _list_clips(
    list_file: str, spec: ClipSettings, skipped: list[str]
) -> Iterator[tuple[np.ndarray, int]]:
    from keras_squeezetime.training.annotations import parse_video_list
    from keras_squeezetime.video.clips import video_clips
    from keras_squeezetime.video.decode import VideoDecodeError

    entries = parse_video_list(list_file, video_root=os.path.dirname(os.path.abspath(list_file)))
    if not entries:
        raise ValueError(f"Video list {list_file} names no video.")
    for entry in entries:
        try:
            # One clip: the centre window, as validation and the TFRecord eval clip take it.
            clips, _ = video_clips(entry.path, spec, num_clips=1)
        except VideoDecodeError as error:
            # A long calibration or evaluation must not die on one bad video of a list.
            skipped.append(f"{error.path}: {error.reason}")
            logger.warning("Skipping %s (listed in %s): %s", error.path, list_file, error.reason)
            continue
        yield clips[0], entry.label_index


def _record_clips(pattern: str, spec: ClipSettings) -> Iterator[tuple[np.ndarray, int]]:
    import tensorflow as tf

    from keras_squeezetime.training.pipeline import (
        PipelineConfig, corrupt_record_message, eval_dataset, list_record_files)
    from keras_squeezetime.training.tf_errors import tf_error_text

    config = PipelineConfig(
        frames=spec.frames,
        frame_interval=spec.frame_interval,
        image_size=spec.image_size,
        short_side=spec.short_side,
    )
    try:
        for clips, labels in eval_dataset(pattern, 1, config).as_numpy_iterator():
            yield clips[0].astype(np.float32), int(labels[0])
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        # TensorFlow's message names neither file nor record: find them, else name the pattern.
        found = corrupt_record_message(list_record_files(pattern))
        if found is not None:
            raise ValueError(f"{found}; TFRecords must be valid files written by "
                             "squeezetime-prepare.") from None
        damage = ("a record is corrupt" if isinstance(error, tf.errors.DataLossError)
                  else "a record could not be read as a SqueezeTime clip")
        raise ValueError(
            f"TFRecord data {pattern}: {damage} ({tf_error_text(error)}); TFRecords must be "
            "valid files written by squeezetime-prepare."
        ) from None


def _looks_like_text(path: str) -> bool:
    """Whether `path` starts with UTF-8 text (no NUL byte): a video list, not a record file."""
    from keras_squeezetime import file_paths

    if file_paths.is_remote(path):
        return False
    with open(path, "rb") as handle:
        head = handle.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the 4096-byte read is still text.
        if error.start < len(head) - 3:
            return False
    return bool(head) and b"\0" not in head


def _not_records_message(path: str, problem: str) -> str:
    """One line naming `path`, what is wrong with it and what was expected."""
    # A TFRecord starts with a little-endian uint64 length, NUL bytes: text is no TFRecord.
    if _looks_like_text(path):
        return (f"{path} is a text file, not a TFRecord file; a video list must be named "
                "*.txt to be read as one (rename it), and TFRecords must be valid files "
                "written by squeezetime-prepare.")
    return (f"{path} is not a valid TFRecord file: {problem}; TFRecords must be valid files "
            "written by squeezetime-prepare, and a video list must end in .txt.")
