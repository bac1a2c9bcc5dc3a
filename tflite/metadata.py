"""Labels and sampling settings attached to a LiteRT model.

Decision: the TFLite Support metadata writer (`tflite_support`) is not installable beside
TF 2.21, so labels travel two ways. (1) Embedded: the flatbuffer's own `metadata` table
(schema field `Model.metadata`, name -> buffer) gets `squeezetime.labels` (UTF-8, one class
per line) and `squeezetime.config` (JSON: quantization, input type, frame interval, ...);
runtimes ignore unknown entries, and `read_metadata` gets them back. (2) Beside: `<model
stem>.labels.txt`, the file an Android app bundles as an asset, since the LiteRT Java API
does not expose custom metadata.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from keras_squeezetime import file_paths
from keras_squeezetime.tflite import flatbuffer

LABELS_KEY = "squeezetime.labels"
CONFIG_KEY = "squeezetime.config"


def embed(model_bytes: bytes, class_names: Sequence[str] | None, config: dict) -> bytes:
    """`model_bytes` with the labels (if any) and `config` added as metadata buffers."""
    entries = {CONFIG_KEY: json.dumps(config, sort_keys=True).encode()}
    if class_names is not None:
        entries[LABELS_KEY] = "\n".join(_check_names(class_names)).encode()
    model = flatbuffer.read(model_bytes)
    flatbuffer.set_metadata(model, entries)
    return flatbuffer.write(model)


def read_metadata(model_bytes: bytes) -> tuple[list[str] | None, dict]:
    """`(class names or None, config dict)` embedded by `embed`; `(None, {})` if absent."""
    entries = flatbuffer.read_metadata(model_bytes, (LABELS_KEY, CONFIG_KEY))
    labels = entries[LABELS_KEY].decode().split("\n") if LABELS_KEY in entries else None
    config = json.loads(entries[CONFIG_KEY].decode()) if CONFIG_KEY in entries else {}
    return labels, config


def labels_path_for(model_path: str | os.PathLike) -> str:
    """`dir/name.labels.txt` for `dir/name.tflite`."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".labels.txt"


def write_labels_beside(model_path: str | os.PathLike, class_names: Sequence[str]) -> str:
    """Writes the labels file beside the model atomically; returns its path."""
    path = labels_path_for(model_path)
    file_paths.write_text(path, "".join(f"{name}\n" for name in _check_names(class_names)))
    return path


def _check_names(class_names: Sequence[str]) -> list[str]:
    names = [str(name) for name in class_names]
    bad = [name for name in names if "\n" in name or not name.strip()]
    if bad:
        raise ValueError(f"Class names must be non-empty single lines; got {bad[:3]}.")
    return names
