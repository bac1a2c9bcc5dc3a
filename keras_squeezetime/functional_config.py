"""Editing a functional model's config (`model.get_config()`) before `from_config`.

Folding, adding the pixel normalisation and LiteRT's stacked input layout each rebuild a
SqueezeTime model from an edited config: layers added, removed or fed from elsewhere.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence


def rewire(value: Any, old: str, new: str, shape: Sequence[int | None] | None = None) -> Any:
    """`value` (a config or any part of it) with references to layer `old`'s output
    replaced by layer `new`'s; with `shape`, the tensors so referenced also record it."""
    if isinstance(value, dict):
        if (shape is not None and value.get("class_name") == "__keras_tensor__"
                and value["config"]["keras_history"][0] == old):
            value = copy.deepcopy(value)
            value["config"]["shape"] = list(shape)
        return {k: rewire(v, old, new, shape) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) == 3 and value[0] == old and isinstance(value[1], int):
            return type(value)([new, *value[1:]])
        return type(value)(rewire(v, old, new, shape) for v in value)
    return value


def input_source(entry: dict) -> str:
    """The name of the layer whose output is a config entry's first input."""
    return entry["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0]


def layer_entry(config: dict, name: str) -> dict:
    """The entry of layer `name` in a functional config's `layers`."""
    for entry in config["layers"]:
        if entry["config"].get("name") == name:
            return entry
    raise KeyError(name)
