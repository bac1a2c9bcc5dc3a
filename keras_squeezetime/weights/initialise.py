"""Initialising a built SqueezeTime model from any weights source.

Sources: a preset name, an official `.pth` checkpoint (mapped key by key, see
`official_mapping`), a `.keras` file or a model folder (variables copied by path, see
`variables.copy_weights`) and a `.weights.h5` file. This is what the builder's `weights=`
argument and `model_loading.load_weights_into` run; it never imports the builder (the
caller passes it in when a `.weights.h5` needs its source model built), so there is no
import circle.
"""

from __future__ import annotations

import os
import zipfile
from typing import Callable

import keras
import numpy as np

from keras_squeezetime import file_paths, presets
from keras_squeezetime.model_config import read_model_config
from keras_squeezetime.model_kinds import folder_model_file, model_kind
from keras_squeezetime.weights.checkpoint import load_state_dict
from keras_squeezetime.weights.official_mapping import apply_official_state_dict
from keras_squeezetime.weights.stem_mismatch import weights_file_mismatch
from keras_squeezetime.weights.variables import copy_weights, variable_paths

# The ImageNet checkpoint was made for a different input layout (image pretraining),
# so, like the official `load_ckpts`, keys that do not fit are skipped, not fatal.
PARTIAL_PRESETS = ("imagenet",)

# A callable building a SqueezeTime model from keyword arguments (the builder).
BuildModel = Callable[..., keras.Model]


def initialise_weights(
    model: keras.Model,
    source: str | os.PathLike,
    build_model: BuildModel | None = None,
) -> dict[str, list[str]]:
    """Loads `source` (a preset name or a path) into a model built by `SqueezeTime`.

    A checkpoint whose classifier has another number of classes (or none) loads the
    backbone and leaves the head fresh, with a warning (fine-tuning). Anything else that
    does not fit is an error naming it.

    Args:
      model: the model to initialise.
      source: a preset, an official `.pth`/`.pt`, a `.keras` file, a model folder (holding
        `model.keras`, or `model.weights.h5` with `config.json`) or a `.weights.h5`.
      build_model: the builder; needed for a `.weights.h5` with a `config.json` beside it
        (its model is built from that file, then copied by path into `model`).

    Returns:
      `{"loaded": [...], "skipped": [...]}`: official keys (presets, `.pth`) or variable
      paths (Keras files).

    Raises:
      FileNotFoundError: a path that does not exist and is no preset.
      ValueError: an unsupported file or weights that do not fit, named.
      presets.PresetDownloadError: a preset that cannot be downloaded.
    """
    source = os.fspath(source)
    kind = model_kind(source)
    if kind == "preset":
        return apply_official_state_dict(
            model, load_preset_state_dict(source), source=f"preset {source!r}",
            strict_backbone=source not in PARTIAL_PRESETS,
        )
    if kind == "folder":
        return initialise_weights(model, folder_model_file(source), build_model)
    if kind == "pth":
        return apply_official_state_dict(model, load_state_dict(source), source=source)
    if kind == "weights":
        return _load_weights_file(model, source, build_model)
    if kind == "keras":
        return copy_weights(load_keras_file(source), model, source=source)
    raise ValueError(f"weights={source!r} is a LiteRT model, which holds no Keras weights; "
                     "initialise from the .keras file or folder it was exported from.")


def load_keras_file(path: str | os.PathLike) -> keras.Model:
    """Reads a `.keras` file with `safe_mode=True`; errors name the file."""
    import keras_squeezetime.layers  # noqa: F401  (registers the classes the file names)

    path = os.fspath(path)
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        # Keras would report such a file as not found.
        raise ValueError(f"Cannot load Keras model {path!r}: the file is not a .keras archive "
                         "(a zip file); it may be truncated or of another format.")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a broken archive.
        text = str(error).strip().splitlines()
        raise ValueError(f"Cannot load Keras model {path!r}: {type(error).__name__}: "
                         f"{text[0] if text else ''}") from error


def _load_weights_file(model: keras.Model, path: str, build_model: BuildModel | None) -> dict:
    config = read_model_config(path)
    if config is not None and build_model is not None:
        # The file holds the weights of the model config.json describes: build that one,
        # then copy by path (the head may differ, e.g. when fine-tuning on other classes).
        height, width = model.input_shape[2:4]
        saved = build_model(input_shape=(config.frames, height, width, 3),
                            **config.builder_kwargs())
        _keras_load_weights(saved, path)
        return copy_weights(saved, model, source=path)
    _keras_load_weights(model, path)
    return {"loaded": sorted(variable_paths(model)), "skipped": []}


def _keras_load_weights(model: keras.Model, path: str) -> None:
    try:
        model.load_weights(path)
    except (ValueError, KeyError) as error:
        # Keras' message goes on to print the variable's values: its first line is enough.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"Cannot load {path} into {model.name}: "
                         f"{weights_file_mismatch(path, model)} Keras said: {first}") from error


def load_preset_state_dict(name: str) -> dict[str, np.ndarray]:
    """Downloads (once) and converts (once) a preset; returns its normalised state dict.

    The converted arrays are cached beside the downloaded `.pth` as an `.npz`
    (no pickle), so later loads skip both the download and the zip parsing.

    Raises:
      presets.PresetDownloadError: the file is not cached and cannot be downloaded.
    """
    # KERAS_HOME is read now, not at import, so a process can redirect its cache.
    path = presets.resolve_preset(name, cache_dir=os.environ.get("KERAS_HOME"))
    cache = path + ".npz"
    if os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    state = load_state_dict(path)
    # Written atomically: an interrupted conversion must not leave a truncated cache.
    with file_paths.replaced_atomically(cache) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **state)
    return state
