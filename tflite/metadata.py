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
import tempfile
from typing import Sequence

import numpy as np

LABELS_KEY = "squeezetime.labels"
CONFIG_KEY = "squeezetime.config"


def embed(flatbuffer: bytes, class_names: Sequence[str] | None, config: dict) -> bytes:
    """`flatbuffer` with the labels (if any) and `config` added as metadata buffers."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    entries = {CONFIG_KEY: json.dumps(config, sort_keys=True).encode()}
    if class_names is not None:
        entries[LABELS_KEY] = "\n".join(_check_names(class_names)).encode()
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for key, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = key
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flatbuffer: bytes) -> tuple[list[str] | None, dict]:
    """`(class names or None, config dict)` embedded by `embed`; `(None, {})` if absent."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    labels, config = None, {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = entry.Name().decode()
        if name not in (LABELS_KEY, CONFIG_KEY):
            continue
        data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
        if name == LABELS_KEY:
            labels = data.split("\n")
        else:
            config = json.loads(data)
    return labels, config


def labels_path_for(model_path: str | os.PathLike) -> str:
    """`dir/name.labels.txt` for `dir/name.tflite`."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + ".labels.txt"


def write_labels_beside(model_path: str | os.PathLike, class_names: Sequence[str]) -> str:
    """Writes the labels file beside the model atomically; returns its path."""
    path = labels_path_for(model_path)
    text = "".join(f"{name}\n" for name in _check_names(class_names))
    fd, temp = tempfile.mkstemp(prefix=".labels-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp creates 0600; the labels ship with the model, so give them the mode
        # an ordinary new file gets (0666 less the umask), as the .tflite has.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def _check_names(class_names: Sequence[str]) -> list[str]:
    names = [str(name) for name in class_names]
    bad = [name for name in names if "\n" in name or not name.strip()]
    if bad:
        raise ValueError(f"Class names must be non-empty single lines; got {bad[:3]}.")
    return names
