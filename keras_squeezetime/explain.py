"""Old home of explanations, now `keras_squeezetime.apps.explain`; kept for existing imports."""

from keras_squeezetime.apps.explain import (  # noqa: F401
    GRADCAM_LAYER,
    Explanation,
    explain_clip,
    explain_video,
    overlay,
)
