"""What kind of model a path or name is, and which file of a model folder holds the model.

Shared by `model_loading.load_model` and the builder's `weights=` (`weights.initialise`),
so both accept the same sources and name the same problems.
"""

from __future__ import annotations

import os

from keras_squeezetime import file_paths, presets
from keras_squeezetime.model_config import KERAS_MODEL_FILE, WEIGHTS_FILE

MODEL_KINDS = ("preset", "pth", "keras", "folder", "weights", "tflite")
TFLITE_SUFFIX = ".tflite"  # matched ignoring case
# Keras' weights-only format: the name must end so (Keras picks the format from it).
WEIGHTS_SUFFIX = ".weights.h5"


def model_kind(source: str | os.PathLike) -> str:
    """Which of `MODEL_KINDS` `source` names, without loading anything.

    Raises:
      FileNotFoundError: a path of a supported kind that does not exist.
      ValueError: a name or file of no supported kind, or a folder without a model.
    """
    source = os.fspath(source)
    if source in presets.PRESETS:
        return "preset"
    if file_paths.isdir(source):
        if any(file_paths.exists(file_paths.join(source, name))
               for name in (KERAS_MODEL_FILE, WEIGHTS_FILE)):
            return "folder"
        raise ValueError(f"Model folder {source!r} holds no {KERAS_MODEL_FILE} (nor "
                         f"{WEIGHTS_FILE}).")
    lower = source.lower()
    kind = ("weights" if lower.endswith(WEIGHTS_SUFFIX) else
            "keras" if lower.endswith(".keras") else
            "tflite" if lower.endswith(TFLITE_SUFFIX) else
            "pth" if lower.endswith((".pth", ".pt")) else None)
    if kind is None:
        what = "file" if file_paths.exists(source) else "name"
        raise ValueError(
            f"Unsupported model {what} {source!r}: expected a .keras file, a folder holding "
            f"{KERAS_MODEL_FILE} (or {WEIGHTS_FILE}) and config.json, a .weights.h5 with "
            f"config.json beside it, a .tflite file, an official .pth checkpoint or a preset "
            f"{sorted(presets.PRESETS)}."
        )
    if not file_paths.exists(source):
        raise FileNotFoundError(f"Model file {source!r} does not exist.")
    return kind


def folder_model_file(folder: str) -> str:
    """The model file of a model folder: `model.keras`, else `model.weights.h5`."""
    keras_file = file_paths.join(folder, KERAS_MODEL_FILE)
    return keras_file if file_paths.exists(keras_file) else file_paths.join(folder, WEIGHTS_FILE)
