"""Dataset annotation formats -> a list of `VideoEntry` (file, class index, class name, id).

Supported: mmaction-style lists (`path label` per line), Kinetics CSVs, HMDB51's
official split files and a folder per class. Class indices come from a label list
(`keras_squeezetime.labels.load_labels`: a built-in name, a file, or the names).
Paths are taken literally: spaces, brackets and non-ASCII letters are fine, nothing
is globbed.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Sequence

from absl import logging

from keras_squeezetime.labels import load_labels

LabelsSpec = str | os.PathLike | Sequence[str]

VIDEO_EXTENSIONS = (
    ".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp"
)

_HMDB_SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<split>\d+)\.txt$")
# HMDB51 split files mark each video: 1 train, 2 test, 0 unused.
_HMDB_SUBSETS = {"train": "1", "test": "2"}


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One video to prepare: its file, class index (-1 if unlabelled), class name and id."""

    path: str
    label_index: int
    label_text: str
    video_id: str


def parse_video_list(
    list_file: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    labels: LabelsSpec | None = None,
) -> list[VideoEntry]:
    """Parses an mmaction-style list: one `path label_index` per line.

    The label is the last whitespace-separated token, so paths may hold spaces.
    Blank lines and lines starting with `#` are skipped.

    Args:
      list_file: the UTF-8 list.
      video_root: joined in front of relative paths.
      labels: class names (anything `load_labels` takes) for `label_text` and a range
        check; None leaves `label_text` empty.

    Raises:
      ValueError: a line without a label, a label that is not an integer, or out of range.
    """
    names = load_labels(labels) if labels is not None else None
    entries = []
    with open(list_file, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            where = f"{os.fspath(list_file)}:{line_number}"
            if len(parts) != 2:
                raise ValueError(f"{where}: expected 'path label', got {line!r}.")
            path, label = parts
            try:
                label_index = int(label)
            except ValueError:
                raise ValueError(f"{where}: label {label!r} is not a class index.") from None
            entries.append(
                VideoEntry(
                    path=_join(video_root, path),
                    label_index=label_index,
                    label_text=_label_text(names, label_index, where),
                    video_id=_stem(path),
                )
            )
    return entries


def kinetics_filename(
    youtube_id: str, time_start: int, time_end: int, extension: str = ".mp4"
) -> str:
    """The file name the Kinetics downloaders give a clip: `{id}_{start:06d}_{end:06d}.mp4`."""
    return f"{youtube_id}_{int(time_start):06d}_{int(time_end):06d}{extension}"


def parse_kinetics_csv(
    csv_file: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    labels: LabelsSpec = "kinetics400",
    extension: str = ".mp4",
) -> list[VideoEntry]:
    """Parses a Kinetics CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`).

    The file is looked up as `video_root/<file>`, then `video_root/<label>/<file>`
    and `video_root/<label with _ for spaces>/<file>` (the common download layouts);
    the first that exists is used, else the flat path (reported missing later). A test
    CSV without a `label` column gives `label_index` -1.

    Raises:
      ValueError: a missing column, a bad time, or a label not in `labels`.
    """
    names = load_labels(labels)
    index_of = {name: i for i, name in enumerate(names)}
    entries = []
    with open(csv_file, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"youtube_id", "time_start", "time_end"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{os.fspath(csv_file)}: missing columns {sorted(missing)}.")
        for row_number, row in enumerate(reader, start=2):
            where = f"{os.fspath(csv_file)}:{row_number}"
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise ValueError(f"{where}: bad time_start/time_end in {row}.") from None
            label_text = (row.get("label") or "").strip()
            if label_text:
                if label_text not in index_of:
                    raise ValueError(f"{where}: label {label_text!r} is not in the label list.")
                label_index = index_of[label_text]
            else:
                label_index = -1
            filename = kinetics_filename(row["youtube_id"], start, end, extension)
            entries.append(
                VideoEntry(
                    path=_kinetics_path(video_root, label_text, filename),
                    label_index=label_index,
                    label_text=label_text,
                    video_id=filename[: -len(extension)] if extension else filename,
                )
            )
    return entries


def parse_hmdb51_splits(
    split_dir: str | os.PathLike,
    split: int = 1,
    subset: str = "train",
    video_root: str | os.PathLike | None = None,
    labels: LabelsSpec = "hmdb51",
) -> list[VideoEntry]:
    """Parses HMDB51's official split files `<class>_test_split<k>.txt` (`video.avi 1|2|0`).

    Marks: 1 train, 2 test, 0 unused. Videos live at `video_root/<class>/<video>`.

    Args:
      split_dir: folder of the 153 split files.
      split: 1, 2 or 3.
      subset: "train" or "test".
      video_root: folder of the class folders (defaults to `split_dir`).
      labels: the class list; every split file's class must be in it.

    Raises:
      ValueError: a bad split/subset, no split file for `split`, or an unknown class.
    """
    if subset not in _HMDB_SUBSETS:
        raise ValueError(f"subset must be 'train' or 'test'; got {subset!r}.")
    names = load_labels(labels)
    index_of = {name: i for i, name in enumerate(names)}
    video_root = os.fspath(video_root if video_root is not None else split_dir)
    split_files = []
    for filename in sorted(os.listdir(split_dir)):
        match = _HMDB_SPLIT_FILE.match(filename)
        if match and int(match.group("split")) == split:
            split_files.append((match.group("label"), filename))
    if not split_files:
        raise ValueError(f"No '<class>_test_split{split}.txt' files in {os.fspath(split_dir)!r}.")
    entries = []
    for label_text, filename in split_files:
        if label_text not in index_of:
            raise ValueError(f"{filename}: class {label_text!r} is not in the label list.")
        with open(os.path.join(split_dir, filename), encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                line = line.strip()
                if not line:
                    continue
                parts = line.rsplit(None, 1)
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(
                        f"{filename}:{line_number}: expected 'video 0|1|2', got {line!r}."
                    )
                if parts[1] != _HMDB_SUBSETS[subset]:
                    continue
                entries.append(
                    VideoEntry(
                        path=os.path.join(video_root, label_text, parts[0]),
                        label_index=index_of[label_text],
                        label_text=label_text,
                        video_id=_stem(parts[0]),
                    )
                )
    return entries


def parse_class_folders(
    root: str | os.PathLike,
    labels: LabelsSpec | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[VideoEntry]:
    """Lists `root/<class>/<video>`: one sub-folder per class, files sorted by name.

    Args:
      root: the dataset folder.
      labels: the class list; folder names must be in it. None uses the sorted folder
        names as the classes.
      extensions: video file suffixes to take (case-insensitive).

    A class's index is its position in `labels`, else in the sorted folder names, empty
    folders included (warned about): give the same `labels` to every split whose folders
    may differ.

    Raises:
      ValueError: a folder that is not a class of `labels`, or no class folder at all.
    """
    root = os.fspath(root)
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not folders:
        raise ValueError(f"{root!r} holds no class folders.")
    names = load_labels(labels) if labels is not None else folders
    index_of = {name: i for i, name in enumerate(names)}
    suffixes = tuple(ext.lower() for ext in extensions)
    entries = []
    for folder in folders:
        if folder not in index_of:
            raise ValueError(f"Folder {folder!r} in {root!r} is not a class of the label list.")
        directory = os.path.join(root, folder)
        found = 0
        for filename in sorted(os.listdir(directory)):
            path = os.path.join(directory, filename)
            # Not only regular files: a broken link is listed, fails to decode and is reported.
            if filename.lower().endswith(suffixes) and not os.path.isdir(path):
                entries.append(VideoEntry(path, index_of[folder], folder, _stem(filename)))
                found += 1
        if not found:
            logging.warning("Class folder %r (class %d) holds no video (%s): the class keeps "
                            "its index and has no examples here.", directory, index_of[folder],
                            ", ".join(suffixes))
    return entries


def _join(root: str | os.PathLike | None, path: str) -> str:
    return os.path.join(os.fspath(root), path) if root is not None else path


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _label_text(names: list[str] | None, label_index: int, where: str) -> str:
    if names is None:
        return ""
    if not 0 <= label_index < len(names):
        raise ValueError(f"{where}: label {label_index} is outside 0..{len(names) - 1}.")
    return names[label_index]


def _kinetics_path(root: str | os.PathLike | None, label: str, filename: str) -> str:
    flat = _join(root, filename)
    if label:
        for folder in (label, label.replace(" ", "_")):
            candidate = _join(root, os.path.join(folder, filename))
            if not os.path.exists(flat) and os.path.exists(candidate):
                return candidate
    return flat
