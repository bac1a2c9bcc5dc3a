"""Old home of the predictor, now `keras_squeezetime.apps.predictor` (an application module).

Kept so that existing imports work; `ClipSettings` lives in `keras_squeezetime.model_config`
and `model_kind` in `keras_squeezetime.model_loading`.
"""

from keras_squeezetime.apps.predictor import (  # noqa: F401
    KERAS_MODEL_NAME,
    Predictor,
    load_predictor,
    resolve_class_names,
)
from keras_squeezetime.model_config import ClipSettings  # noqa: F401
from keras_squeezetime.model_loading import model_kind  # noqa: F401
