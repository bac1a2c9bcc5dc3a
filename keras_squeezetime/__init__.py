"""keras-squeezetime: SqueezeTime mobile video recognition for Keras 3.

Importing the package registers its layers, so `keras.saving.load_model` reads
SqueezeTime `.keras` files; other public names are imported on first use (PEP 562).
Data-preparation workers skip even the registration (see `worker_imports`).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from keras_squeezetime.version import __version__
from keras_squeezetime.worker_imports import LIGHT_IMPORT_ENV

if os.environ.get(LIGHT_IMPORT_ENV) != "1":
    from keras_squeezetime import layers  # noqa: F401  (registers the custom layers)

# public name -> module that defines it
_EXPORTS = {
    "SqueezeTime": "keras_squeezetime.builder",
    "fold_batch_norm": "keras_squeezetime.folding",
    "decode_predictions": "keras_squeezetime.labels",
    "load_labels": "keras_squeezetime.labels",
    "preprocess_input": "keras_squeezetime.preprocessing",
    "layers": "keras_squeezetime.layers",
    "load_model": "keras_squeezetime.model_loading",
    "predict_video": "keras_squeezetime.apps.prediction",
    "predict_long_video": "keras_squeezetime.apps.timeline",
    "load_predictor": "keras_squeezetime.apps.predictor",
    "presets": "keras_squeezetime.presets",
    "list_presets": "keras_squeezetime.presets",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_squeezetime' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if _EXPORTS[name].endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs
    from keras_squeezetime import layers, presets  # noqa: F401, F811
    from keras_squeezetime.apps.prediction import predict_video  # noqa: F401
    from keras_squeezetime.apps.predictor import load_predictor  # noqa: F401
    from keras_squeezetime.apps.timeline import predict_long_video  # noqa: F401
    from keras_squeezetime.builder import SqueezeTime  # noqa: F401
    from keras_squeezetime.folding import fold_batch_norm  # noqa: F401
    from keras_squeezetime.labels import decode_predictions, load_labels  # noqa: F401
    from keras_squeezetime.model_loading import load_model  # noqa: F401
    from keras_squeezetime.preprocessing import preprocess_input  # noqa: F401
    from keras_squeezetime.presets import list_presets  # noqa: F401
