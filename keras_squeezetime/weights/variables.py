"""Copying the variables of one Keras model into another, matched by path."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_squeezetime.architecture import HEAD_PREFIX, STEM_CONV
from keras_squeezetime.weights.stem_mismatch import stem_mismatch


def variable_paths(model: keras.Model) -> dict[str, keras.Variable]:
    """`{path: variable}` of a model's weights, paths without the model-name prefix."""
    prefix = f"{model.name}/"
    paths = {}
    for variable in model.weights:
        path = variable.path
        if path.startswith(prefix):
            path = path[len(prefix):]
        if path in paths:
            raise ValueError(f"{model.name} has two variables at the path {path!r}; they cannot "
                             "be told apart when copying weights.")
        paths[path] = variable
    return paths


def copy_weights(
    source_model: keras.Model,
    target_model: keras.Model,
    allow_new_head: bool = True,
    source: str | None = None,
) -> dict[str, list[str]]:
    """Assigns every variable of `target_model` the value of the source variable at its path.

    Variables are matched by path (`stage1_block1/conv1/kernel`; the model name is not part
    of it), never by their order in the models, and must have the same shape. The
    classification head (paths under `head/`) is the one exception: when the source has no
    head or one of another shape (another class count) and `allow_new_head`, the target's
    head keeps its initialisation, with a warning (fine-tuning). A source head is ignored
    when the target has none (a backbone).

    Args:
      source_model: the model to copy from.
      target_model: the model to copy into.
      allow_new_head: leave a head that does not fit fresh instead of failing.
      source: name of the source for messages (default: the source model's name).

    Returns:
      `{"loaded": [paths assigned], "skipped": [target or source paths not assigned]}`.

    Raises:
      ValueError: naming each missing, extra or mis-shaped variable with both shapes.
    """
    name = source or source_model.name
    sources, targets = variable_paths(source_model), variable_paths(target_model)
    source_head = {p for p in sources if p.startswith(HEAD_PREFIX)}
    target_head = {p for p in targets if p.startswith(HEAD_PREFIX)}

    stem = f"{STEM_CONV}/kernel"
    if stem in sources and stem in targets and _shape(sources[stem]) != _shape(targets[stem]):
        shape = _shape(sources[stem])
        message = stem_mismatch(name, f"{stem} {shape}", shape[2] // 3, shape[3], target_model)
        if message:
            raise ValueError(f"Cannot copy the weights of {name} into {target_model.name}: "
                             f"{message}")
    # Listed in model order, so the first entries are the first layers (the stem).
    problems = []
    missing = [p for p in targets if p not in sources and p not in target_head]
    extra = [p for p in sources if p not in targets and p not in source_head]
    misshaped = [
        f"{p}: source {_shape(sources[p])}, target {_shape(targets[p])}"
        for p in targets
        if p in sources and p not in target_head and _shape(sources[p]) != _shape(targets[p])
    ]
    if missing:
        problems.append(f"missing in the source ({len(missing)}): {_shorten(missing)}")
    if extra:
        problems.append(f"not in the target ({len(extra)}): {_shorten(extra)}")
    if misshaped:
        problems.append(f"mis-shaped ({len(misshaped)}): {_shorten(misshaped)}")

    copy = sorted(p for p in targets if p not in target_head)
    skipped: list[str] = []
    if target_head:
        head_fits = source_head == target_head and all(
            _shape(sources[p]) == _shape(targets[p]) for p in target_head)
        if head_fits:
            copy += sorted(target_head)
        else:
            described = ", ".join(f"{p} {_shape(sources[p])}" for p in sorted(source_head))
            reason = (f"{name} has no classification head" if not source_head else
                      f"{name}'s head ({described}) does not fit {target_model.name}'s "
                      f"({', '.join(f'{p} {_shape(targets[p])}' for p in sorted(target_head))})")
            if not allow_new_head:
                problems.append(reason)
            else:
                skipped += sorted(target_head)
                if not problems:
                    warnings.warn(f"{reason}: the backbone is copied and the head keeps its "
                                  "fresh initialisation (fine-tuning).", stacklevel=2)
    else:
        skipped += sorted(source_head)
    if problems:
        raise ValueError(f"Cannot copy the weights of {name} (the source) into "
                         f"{target_model.name} (the target): " + "; ".join(problems))
    for path in copy:
        variable = targets[path]
        value = keras.ops.convert_to_numpy(sources[path])
        variable.assign(np.asarray(value).astype(variable.dtype))
    return {"loaded": copy, "skipped": skipped}


def _shape(variable) -> tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def _shorten(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
