"""Old home of video prediction and timelines, now `keras_squeezetime.apps.prediction` and
`keras_squeezetime.apps.timeline`; clip making is `keras_squeezetime.video.clips`.

Kept so that existing imports work.
"""

from keras_squeezetime.apps.prediction import Prediction, VideoPrediction, predict_video  # noqa: F401
from keras_squeezetime.apps.timeline import (  # noqa: F401
    Segment,
    Timeline,
    merge_segments,
    predict_long_video,
    window_starts,
)
from keras_squeezetime.video.clips import center_crop, decode_crops, load_clips  # noqa: F401
