"""An official SqueezeTime `.pth` checkpoint converted to a Keras `.weights.h5` file.

What `squeezetime-convert` runs. The model is built from the checkpoint's own
configuration (width, frames, classes, positional-embedding sizes), the weights are
mapped and checked key by key, and the Keras weights are written atomically with the
model's `config.json` beside them, so `load_model`, `squeezetime-predict` and
`squeezetime-export` take the file as they take a training run's weights.
"""

from __future__ import annotations

import os
from typing import Any

from keras_squeezetime import file_paths
from keras_squeezetime.builder import SqueezeTime
from keras_squeezetime.model_config import ModelConfig, read_model_config, write_model_config
from keras_squeezetime.model_kinds import WEIGHTS_SUFFIX
from keras_squeezetime.model_loading import checkpoint_model_config
from keras_squeezetime.weights.checkpoint import inspect_checkpoint, load_state_dict
from keras_squeezetime.weights.official_mapping import apply_official_state_dict


def convert_checkpoint(source: str | os.PathLike, output: str | os.PathLike,
                       image_size: int | None = None) -> dict[str, Any]:
    """Converts an official `.pth` to a Keras `.weights.h5`; returns the builder kwargs.

    Args:
      source: the official checkpoint.
      output: the `.weights.h5` to write (atomically: nothing is left on failure). The
        model's `config.json` is written into the same folder.
      image_size: input height and width recorded for the model (the weights themselves
        fit any size); by default the size its positional embeddings were made for.

    Returns:
      The `SqueezeTime` keyword arguments, `input_shape` included, that build the model
      the file loads into. The `config.json` also records the source (`converted_from`)
      and how many of its keys were loaded (`loaded_keys`).

    Raises:
      FileNotFoundError: `source` does not exist.
      ValueError: `source` is not a SqueezeTime checkpoint, `output` does not end in
        `.weights.h5`, or its folder holds the `config.json` of another model.
    """
    source, output = os.fspath(source), os.fspath(output)
    if not output.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"The output must end in '{WEIGHTS_SUFFIX}' (Keras' weights format); "
                         f"got {output!r}.")
    state = load_state_dict(source)
    try:
        config = checkpoint_model_config(inspect_checkpoint(state), image_size)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    _check_folder_config(output, config)
    kwargs = {**config.builder_kwargs(), "input_shape": config.input_shape()}
    model = SqueezeTime(**kwargs)
    report = apply_official_state_dict(model, state, source=source)
    # Keras picks the format from the name, so the temporary file keeps the suffix.
    with file_paths.replaced_atomically(output, suffix=WEIGHTS_SUFFIX) as temporary:
        model.save_weights(temporary)
    provenance = {"converted_from": os.path.abspath(source), "loaded_keys": len(report["loaded"])}
    write_model_config(file_paths.parent(output),
                       config.replace(extra={**config.extra, **provenance}))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def _check_folder_config(output: str, config: ModelConfig) -> None:
    """Refuses a folder whose `config.json` describes another model: the weights file
    would be loaded with it (or it overwritten, and the other model's weights with it)."""
    existing = read_model_config(output)
    if existing is not None and existing != config:
        raise ValueError(
            f"{file_paths.parent(output)} holds the config.json of another model (frames "
            f"{existing.frames}, classes {existing.num_classes}, width "
            f"{existing.width_multiplier}); convert into a folder of its own, as a .weights.h5 "
            "is loaded with the config.json beside it.")
