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
    text = resources.files("keras_squeezetime").joinpath("labels", f"{name}.txt").read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def load_labels(labels: str | os.PathLike | list[str] | tuple[str, ...]) -> list[str]:
    """Returns class names from a built-in list name, a text file (one per line) or a sequence.

    Args:
      labels: "kinetics400", "kinetics600", "hmdb51", a path to a UTF-8 text file with
        one class name per line, or the names themselves.
    """
    if isinstance(labels, (list, tuple)):
        return [str(name) for name in labels]
    labels = os.fspath(labels)
    if labels in BUILTIN_LABELS:
        return list(_read_builtin(labels))
    if not os.path.exists(labels):
        raise FileNotFoundError(
            f"Label list {labels!r} is neither a built-in list {BUILTIN_LABELS} nor an existing file."
        )
    if os.path.isdir(labels):
        raise IsADirectoryError(f"Label list {labels!r} is a folder; expected a text file with "
                                "one class name per line.")
    try:
        with open(labels, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
    except UnicodeDecodeError as error:
        raise ValueError(f"Label file {labels!r} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start}).") from error
    if not names:
        raise ValueError(f"Label file {labels!r} holds no class names.")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"Label file {labels!r} repeats class names: {duplicates[:5]}.")
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


def decode_predictions(
    preds: np.ndarray | Any, top: int = 5,
    labels: str | os.PathLike | list[str] = "kinetics400",
) -> list[list[tuple[int, str, float]]]:
    """Turns class scores `(batch, classes)` into the `top` `(index, name, score)` per clip.

    Args:
      preds: probabilities or logits, a NumPy array or tensor of shape `(batch, classes)`.
      top: how many classes to return per clip, best first (at most the class count).
      labels: class names: a built-in list, a file or a sequence (see `load_labels`).

    Raises:
      ValueError: scores not `(batch, classes)`, a label list of another length, `top` < 1.
    """
    import numpy as np

    if int(top) < 1:
        raise ValueError(f"top must be >= 1; got {top}.")

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
    top = min(int(top), len(names))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [
        [(int(i), names[i], float(row[i])) for i in indices] for row, indices in zip(scores, order)
    ]
