"""Old name of `keras_squeezetime.video.frame_indices`, kept for callers not yet moved."""

from keras_squeezetime.video.frame_indices import (  # noqa: F401
    OUT_OF_BOUND_MODES,
    dense_indices,
    multi_clip_indices,
    uniform_indices,
)
