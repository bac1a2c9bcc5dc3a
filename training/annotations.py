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

# The containers a class folder's videos are taken from: each was checked by writing a small
# file with PyAV and decoding it back (.ogv as VP8 in Ogg: PyAV's wheel decodes Theora but has
# no encoder for it). Raw streams (.h264, .m2v) are left out on purpose.
VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".divx", ".flv", ".f4v",
    ".3gp", ".3g2", ".mpg", ".mpeg", ".mpe", ".vob", ".ts", ".m2ts", ".mts", ".m2t",
    ".wmv", ".asf", ".ogv", ".mxf", ".rm", ".rmvb", ".dv",
)
# Files that sit beside videos and are plainly not videos (notes, metadata, subtitles,
# thumbnails caches): skipped and counted like any other file, but not warned about.
SIDE_FILE_EXTENSIONS = (
    ".txt", ".json", ".jsonl", ".csv", ".tsv", ".md", ".xml", ".yaml", ".yml", ".nfo", ".log",
    ".ini", ".db", ".srt", ".vtt", ".ass", ".ssa", ".sub",
)
# Example paths a warning about skipped files names (the manifest lists them all).
_EXAMPLES = 5

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


@dataclasses.dataclass(frozen=True)
class ClassFolders:
    """What `list_class_folders` found under a dataset folder.

    Attributes:
      entries: the videos, as `parse_class_folders` returns them.
      skipped: every other path it saw, sorted: files without a video extension (in the
        class folders or beside them) and sub-folders of class folders (ending in
        `os.sep`; they are not searched). Hidden files and folders (a name starting with
        `.`, e.g. `.DS_Store` or macOS's `._clip.mp4`) are not listed.
      class_names: every class, index i at position i: `labels`, else the sorted folder
        names, a folder without videos included (the manifest lists it with none written).
    """

    entries: list[VideoEntry]
    skipped: list[str]
    class_names: list[str] = dataclasses.field(default_factory=list)


def parse_class_folders(
    root: str | os.PathLike,
    labels: LabelsSpec | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[VideoEntry]:
    """Lists `root/<class>/<video>`: one sub-folder per class, files sorted by name.

    `list_class_folders(...).entries`; see there. Files that are not taken are warned
    about (count, kinds and a few examples).
    """
    return list_class_folders(root, labels, extensions).entries


def list_class_folders(
    root: str | os.PathLike,
    labels: LabelsSpec | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> ClassFolders:
    """Lists `root/<class>/<video>` and every path it does not take as a video.

    Args:
      root: the dataset folder.
      labels: the class list; folder names must be in it. None uses the sorted folder
        names as the classes.
      extensions: video file suffixes to take (case-insensitive).

    A class's index is its position in `labels`, else in the sorted folder names, empty
    folders included (warned about): give the same `labels` to every split whose folders
    may differ. Hidden files and folders (e.g. `.ipynb_checkpoints`, which would otherwise
    take a class index) are ignored; every other file that is not taken is in `skipped`,
    and one warning gives their count, kinds and a few examples (files with a
    `SIDE_FILE_EXTENSIONS` suffix, such as notes, are skipped without a warning).

    Raises:
      ValueError: a folder that is not a class of `labels`, or no class folder at all.
    """
    root = os.fspath(root)
    folders, skipped = [], []
    for item in sorted(os.scandir(root), key=lambda item: item.name):
        if _hidden(item.name):
            continue  # e.g. .ipynb_checkpoints: no class, and no class index taken
        if item.is_dir():
            folders.append(item.name)
        else:
            skipped.append(item.path)  # a video beside the class folders belongs to no class
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
            if _hidden(filename):
                continue
            path = os.path.join(directory, filename)
            if os.path.isdir(path):
                skipped.append(path + os.sep)
            # Not only regular files: a broken link is listed, fails to decode and is reported.
            elif filename.lower().endswith(suffixes):
                entries.append(VideoEntry(path, index_of[folder], folder, _stem(filename)))
                found += 1
            else:
                skipped.append(path)
        if not found:
            logging.warning("Class folder %r (class %d) holds no video (%s): the class keeps "
                            "its index and has no examples here.", directory, index_of[folder],
                            ", ".join(suffixes))
    skipped.sort()
    _warn_skipped(root, skipped, suffixes)
    return ClassFolders(entries, skipped, list(names))


def skipped_kinds(paths: Sequence[str]) -> dict[str, int]:
    """How many of `paths` have each kind: a lower-case extension, "(no extension)" or
    "(folder)" (a path ending in a separator)."""
    kinds: dict[str, int] = {}
    for path in paths:
        if path.endswith(os.sep):
            kind = "(folder)"
        else:
            kind = os.path.splitext(path)[1].lower() or "(no extension)"
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda item: (-item[1], item[0])))


def _warn_skipped(root: str, skipped: list[str], suffixes: tuple[str, ...]) -> None:
    """One warning for all skipped paths but side files (thousands would bury the log)."""
    unexpected = [path for path in skipped
                  if path.endswith(os.sep) or not path.lower().endswith(SIDE_FILE_EXTENSIONS)]
    if not unexpected:
        return
    kinds = ", ".join(f"{count} {kind}" for kind, count in skipped_kinds(unexpected).items())
    examples = ", ".join(repr(path) for path in unexpected[:_EXAMPLES])
    more = f" and {len(unexpected) - _EXAMPLES} more" if len(unexpected) > _EXAMPLES else ""
    logging.warning(
        "Skipping %d paths under %r that are not videos of a class folder (%s): e.g. %s%s. "
        "Videos are taken from '<class>/<file>' with an extension in %s (sub-folders are not "
        "searched); convert or rename anything else to include it.",
        len(unexpected), root, kinds, examples, more, ", ".join(suffixes),
    )


def _join(root: str | os.PathLike | None, path: str) -> str:
    return os.path.join(os.fspath(root), path) if root is not None else path


def _hidden(name: str) -> bool:
    return name.startswith(".")


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
