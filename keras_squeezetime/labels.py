"""Class-name lists shipped with the package (line i of a list is class index i)."""

from __future__ import annotations

import functools
import os
from importlib import resources
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import numpy as np

BUILTIN_LABELS = ("kinetics400", "kinetics600", "hmdb51")


@functools.lru_cache(maxsize=None)
def _read_builtin(name: str) -> tuple[str, ...]:
    # A folder not named like this module: `keras_squeezetime.labels` is the module.
    lists = resources.files("keras_squeezetime").joinpath("class_lists")
    text = lists.joinpath(f"{name}.txt").read_text("utf-8")
    return tuple(_names_of_lines(text.splitlines(), f"built-in label list {name!r}"))


def load_labels(labels: str | os.PathLike | Sequence[str] | np.ndarray) -> list[str]:
    """Returns class names from a built-in list name, a text file (one per line) or the names.

    Line i of a file names class i: blank lines at the end are dropped, a blank line
    before the last name is an error (it would shift every later class). Every source
    must name at least one class, and no name twice.

    Args:
      labels: "kinetics400", "kinetics600", "hmdb51", a path to a UTF-8 text file with
        one class name per line, or the names themselves (a list, tuple or any other
        sequence of strings, a NumPy array of strings).

    Raises:
      TypeError: `labels` is none of these (e.g. None or a generator), or a name is not
        a string.
      FileNotFoundError, IsADirectoryError: the path is no file.
      ValueError: a file that is not UTF-8 or has an interior blank line; no names; a
        repeated or empty name. Names the file (and line) or the position.
    """
    if isinstance(labels, (str, os.PathLike)):
        return _load_labels_file(os.fspath(labels))
    if isinstance(labels, bytes):
        raise TypeError("labels must be a built-in list name, a path or a sequence of names; "
                        "got bytes (decode it to a str path).")
    names = _as_name_sequence(labels)
    if names is None:
        raise TypeError(
            f"labels must be a built-in list name {BUILTIN_LABELS}, a path to a text file or "
            f"a sequence of class names (list, tuple, NumPy array of str); got "
            f"{type(labels).__name__}.")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"Class names must be strings; name {index} is {name!r} "
                            f"({type(name).__name__}).")
        if not name.strip():
            raise ValueError(f"Class name {index} of the label list is empty.")
    return _checked_names([str(name) for name in names], "The label list")


def _as_name_sequence(labels: Any) -> Sequence | None:
    """`labels` as a sequence of names, or None when it is no sequence (a NumPy array of
    names becomes its list)."""
    if isinstance(labels, Sequence):
        return labels
    if type(labels).__module__ == "numpy" and getattr(labels, "ndim", None) == 1:
        return labels.tolist()
    return None


def _load_labels_file(labels: str) -> list[str]:
    if labels in BUILTIN_LABELS:
        return list(_read_builtin(labels))
    if not os.path.exists(labels):
        raise FileNotFoundError(
            f"Label list {labels!r} is neither a built-in list {BUILTIN_LABELS} nor an "
            "existing file."
        )
    if os.path.isdir(labels):
        raise IsADirectoryError(f"Label list {labels!r} is a folder; expected a text file with "
                                "one class name per line.")
    try:
        with open(labels, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"Label file {labels!r} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start}).") from error
    return _names_of_lines(lines, f"Label file {labels!r}")


def _names_of_lines(lines: Sequence[str], what: str) -> list[str]:
    """The stripped names of a list's lines, line i naming class i; trailing blank lines
    are dropped, an interior one is an error naming its line number."""
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    blank = [number for number, name in enumerate(names, start=1) if not name]
    if blank:
        more = f" (blank lines: {blank[:5]})" if len(blank) > 1 else ""
        raise ValueError(f"{what}: line {blank[0]} is blank{more}, but line i names class i, so "
                         "blank lines may only follow the last name: remove it or name that "
                         "class.")
    return _checked_names(names, what)


def _checked_names(names: list[str], what: str) -> list[str]:
    if not names:
        raise ValueError(f"{what} holds no class names.")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{what} repeats class names: {duplicates[:5]}.")
    return names


def resolve_class_names(
    labels: str | os.PathLike | Sequence[str] | None,
    num_classes: int,
    fallback: Sequence[str] | str | os.PathLike | None = None,
    source: str = "the model",
) -> list[str] | None:
    """The class names for a model with `num_classes` outputs: `labels`, else `fallback`
    (what the model's files say), else None. Either may be anything `load_labels` takes.

    Raises:
      ValueError: the chosen list does not have exactly `num_classes` names.
    """
    chosen = labels if labels is not None else fallback
    if chosen is None:
        return None
    names = load_labels(chosen)
    if len(names) != num_classes:
        what = (f"label list {os.fspath(chosen)!r}" if isinstance(chosen, (str, os.PathLike))
                else "label list")
        raise ValueError(f"The {what} has {len(names)} names but {source} predicts "
                         f"{num_classes} classes.")
    return names


def rank_classes(scores: np.ndarray | Any) -> np.ndarray:
    """Class indices of each row of `scores` `(..., classes)`, best first; equal scores rank
    the lower class index first. Every ranking in the package (top-k names, top-k accuracy,
    timelines) is this one.
    """
    import numpy as np

    # float64: exact for any float32 or integer score, and negating it cannot wrap.
    return np.argsort(-np.asarray(scores, np.float64), axis=-1, kind="stable")


def top_classes(
    scores: np.ndarray | Any, top: int, names: Sequence[str]
) -> list[list[tuple[int, str, float]]]:
    """The ranking of each clip: the `top` `(index, name, score)` of scores `(batch, classes)`.

    Best first; equal scores rank the lower class index first. `decode_predictions` and
    `predict_video` both rank with it.

    Args:
      scores: `(batch, classes)` probabilities or logits (NumPy array or tensor).
      top: classes per clip (at most the class count).
      names: one name per class.

    Raises:
      ValueError: `top` < 1, scores not `(batch, classes)`, or names of another count.
    """
    import numpy as np

    if int(top) < 1:
        raise ValueError(f"top must be >= 1; got {top}.")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"Expected scores of shape (batch, classes); got {scores.shape}.")
    if scores.shape[1] != len(names):
        raise ValueError(f"The scores have {scores.shape[1]} classes but {len(names)} names "
                         "were given.")
    order = rank_classes(scores)[:, :min(int(top), len(names))]
    return [[(int(i), names[i], float(row[i])) for i in indices]
            for row, indices in zip(scores, order)]


def decode_predictions(
    preds: np.ndarray | Any, top: int = 5,
    labels: str | os.PathLike | Sequence[str] | np.ndarray = "kinetics400",
) -> list[list[tuple[int, str, float]]]:
    """Turns class scores `(batch, classes)` into the `top` `(index, name, score)` per clip.

    Args:
      preds: probabilities or logits, a NumPy array or tensor of shape `(batch, classes)`.
      top: how many classes to return per clip, best first (at most the class count).
      labels: class names: a built-in list, a file or a sequence (see `load_labels`).

    Raises:
      ValueError: scores not `(batch, classes)`, a label list of another length, `top` < 1.
      TypeError: `labels` is none of what `load_labels` takes.
    """
    import numpy as np

    scores = np.asarray(preds)
    if scores.ndim != 2:
        raise ValueError(
            f"decode_predictions expects scores of shape (batch, classes); got {scores.shape}."
        )
    names = load_labels(labels)
    if scores.shape[1] != len(names):
        raise ValueError(
            f"The predictions have {scores.shape[1]} classes but the label list "
            f"{labels if isinstance(labels, str) else 'given'} has {len(names)}: pass the labels "
            "the model was trained with."
        )
    return top_classes(scores, top, names)
