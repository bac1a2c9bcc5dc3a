"""An official SqueezeTime `.pth` checkpoint converted to a Keras `.weights.h5` file.

What `squeezetime-convert` runs. The model is built from the checkpoint's own
configuration (width, frames, classes, positional-embedding sizes), the weights are
mapped and checked key by key, and the Keras weights are written atomically. The
builder arguments that load the file are returned and written beside it as `<OUT>.json`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from keras_squeezetime.builder import SqueezeTime
from keras_squeezetime.weights.checkpoint import inspect_checkpoint, load_state_dict
from keras_squeezetime.weights.official_mapping import apply_official_state_dict

WEIGHTS_SUFFIX = ".weights.h5"


def convert_checkpoint(source: str | os.PathLike, output: str | os.PathLike,
                       image_size: int = 224) -> dict[str, Any]:
    """Converts an official `.pth` to a Keras `.weights.h5`; returns the builder kwargs.

    Args:
      source: the official checkpoint.
      output: the `.weights.h5` to write (atomically: nothing is left on failure).
      image_size: input height and width recorded in the builder arguments (the
        weights themselves fit any size).

    Returns:
      The `SqueezeTime` keyword arguments that build the model the file loads into
      (also written to `<output without .weights.h5>.json` with the source and the
      number of keys loaded).

    Raises:
      FileNotFoundError: `source` does not exist.
      ValueError: `source` is not a SqueezeTime checkpoint, or `output` does not end
        in `.weights.h5`.
    """
    source, output = os.fspath(source), os.fspath(output)
    if not output.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"The output must end in '{WEIGHTS_SUFFIX}' (Keras' weights format); "
                         f"got {output!r}.")
    state = load_state_dict(source)
    try:
        config = inspect_checkpoint(state)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    kwargs = {**config.builder_kwargs(),
              "input_shape": (config.frames, image_size, image_size, 3)}
    model = SqueezeTime(**kwargs)
    report = apply_official_state_dict(model, state, source=source)
    # Keras picks the format from the name, so the temporary file keeps the suffix.
    stem = output[: -len(WEIGHTS_SUFFIX)]
    tmp = f"{stem}.tmp-{os.getpid()}{WEIGHTS_SUFFIX}"
    try:
        model.save_weights(tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    with open(stem + ".json", "w", encoding="utf-8") as handle:
        json.dump({"builder_kwargs": kwargs, "source": os.path.abspath(source),
                   "loaded_keys": len(report["loaded"])}, handle, indent=2)
    return kwargs
