"""Video files: PyAV decoding and encoding, frame-index sampling, and clips for a model."""

from keras_squeezetime.video.decode import (
    DecodedFrame,
    FrameCountError,
    VideoDecodeError,
    VideoInfo,
    iter_frames,
    probe_video,
    read_frames,
)
from keras_squeezetime.video.frame_indices import dense_indices, multi_clip_indices, uniform_indices
from keras_squeezetime.video.writer import write_video

__all__ = [
    "DecodedFrame",
    "FrameCountError",
    "VideoDecodeError",
    "VideoInfo",
    "dense_indices",
    "iter_frames",
    "multi_clip_indices",
    "probe_video",
    "read_frames",
    "uniform_indices",
    "write_video",
]
