"""Whether records and a model number their classes alike (line i of a label list names
class index i): training's --labels against its records, validation and test records
against the run's or the model's names."""

from __future__ import annotations

from typing import Mapping, Sequence


def check_record_class_names(names: Sequence[str], label_texts: Mapping[int, str],
                             names_source: str, records_source: str) -> None:
    """Raises ValueError when records use a class index `names` does not have, or name one
    of its classes otherwise.

    Args:
      names: the class names, index i at position i.
      label_texts: what the records call their classes, index -> name (names they do not
        carry are not checked).
      names_source: where `names` come from, for the message (e.g. "--labels classes.txt").
      records_source: which records, for the message (e.g. "the validation records").
    """
    outside = sorted(i for i in label_texts if not 0 <= i < len(names))
    if outside:
        raise ValueError(
            f"{records_source} use class index {outside[-1]} ({label_texts[outside[-1]]!r}) "
            f"but {names_source} has {len(names)} classes (0..{len(names) - 1}).")
    differ = [i for i in sorted(label_texts) if label_texts[i] != names[i]]
    if differ:
        shown = ", ".join(f"{i}: {names[i]!r} there, {label_texts[i]!r} in the records"
                          for i in differ[:3])
        raise ValueError(
            f"{names_source} names {len(differ)} class(es) otherwise than {records_source} do "
            f"({shown}): line i of a label list must name class index i; prepare the records "
            "with the model's label list (squeezetime-prepare --labels) so the indices agree.")
