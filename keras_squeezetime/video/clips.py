"""Clips for a model from a video file: sample frame indices, decode, resize, centre-crop.

The evaluation transform of the training pipeline: decode the sampled frames with the
short side resized to `short_side`, take the centre `image_size` square (mmaction's
`CenterCrop`), feed float pixels in [0, 255]. Prediction, timelines, explanations and
calibration clips all come from here.

What decodes is trusted over what the header says: when a container over-counts its
frames (a file cut short, OpenCV's sample `tree.avi`: 444 in the header, 68 decode), the
indices are sampled again from the frames that exist.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Callable

import numpy as np

from keras_squeezetime.model_config import ClipSettings
from keras_squeezetime.video.decode import FrameCountError, VideoInfo, probe_video, read_frames
from keras_squeezetime.video.frame_indices import multi_clip_indices


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """The centre `size x size` square of frames `(..., H, W, 3)` (mmaction's `CenterCrop`).

    The offset is `(H - size) // 2` rows and `(W - size) // 2` columns. Returns a view.
    """
    height, width = frames.shape[-3], frames.shape[-2]
    if height < size or width < size:
        raise ValueError(f"Cannot crop {size}x{size} from {height}x{width} frames; raise "
                         "short_side or lower image_size.")
    top, left = (height - size) // 2, (width - size) // 2
    return frames[..., top:top + size, left:left + size, :]


def decode_crops(
    path: str | os.PathLike, indices: np.ndarray, settings: ClipSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Decodes each distinct frame of `indices` once and centre-crops it as it decodes
    (only crops are held, never a run of full frames).

    Returns:
      `(crops, positions)`: uint8 crops `(F, S, S, 3)` of the distinct frames and, with
      the shape of `indices`, the crop each index refers to; `crops[positions]` are the clips.

    Raises:
      FrameCountError: an index is past the frames the video decodes to.
      VideoDecodeError: the video is missing or cannot be decoded.
    """
    indices = np.asarray(indices, dtype=np.int64)
    unique, inverse = np.unique(indices, return_inverse=True)
    crops = read_frames(path, indices=unique, short_side=settings.short_side,
                        transform=crop_transform(settings.image_size))
    return crops, inverse.reshape(indices.shape)


def crop_transform(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving a contiguous copy of a frame's centre `size` square, for
    `iter_frames(transform=...)`: the full frame can then be freed."""
    return lambda frame: np.ascontiguousarray(center_crop(frame, size))


def warn_if_short(path: str | os.PathLike, num_frames: int, settings: ClipSettings,
                  stacklevel: int = 2) -> None:
    """Warns that a video of `num_frames` frames is shorter than one clip's span.

    Not an error (mmaction's sampler loops too), but the clip is not what the model was
    trained on: prediction says so rather than predict on it silently.
    """
    if num_frames < settings.span:
        warnings.warn(f"{os.fspath(path)}: {num_frames} frames, fewer than the {settings.span} "
                      f"a clip spans ({settings.frames} frames, every "
                      f"{settings.frame_interval}); the clip wraps around to the first "
                      "frames.", stacklevel=stacklevel + 1)


def load_clips(path: str | os.PathLike, indices: np.ndarray, settings: ClipSettings) -> np.ndarray:
    """Float32 clips `(N, T, S, S, 3)` in [0, 255] of the source frames `indices` `(N, T)`."""
    crops, positions = decode_crops(path, indices, settings)
    return crops[positions].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SampledCrops:
    """Crops of the frames sampled from a video, shared by the clips that use them.

    Attributes:
      info: what `probe_video` found (its `num_frames` is the header's).
      num_frames: frames the indices were sampled from: the header's count, or the
        count that decodes when the header over-counts.
      indices: source frame indices, `(N, T)` (or whatever the sampler returned).
      crops: uint8 `(F, S, S, 3)`, one per distinct index.
      positions: the crop of each index, with the shape of `indices`.
    """

    info: VideoInfo
    num_frames: int
    indices: np.ndarray
    crops: np.ndarray
    positions: np.ndarray

    def clips(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Float32 clips `start:stop` (rows of `indices`) in [0, 255]."""
        return self.crops[self.positions[start:stop]].astype(np.float32)


def sample_crops(
    path: str | os.PathLike,
    settings: ClipSettings,
    sample: Callable[[int], np.ndarray],
) -> SampledCrops:
    """Probes a video, samples indices with `sample(num_frames)`, decodes and crops them.

    When the header claims more frames than decode, `sample` is called again with the
    decoded count (the frames that exist) and those frames are decoded.

    Raises:
      VideoDecodeError: the video is missing or cannot be decoded.
    """
    info = probe_video(path)
    num_frames = info.num_frames
    indices = np.asarray(sample(num_frames), dtype=np.int64)
    try:
        crops, positions = decode_crops(path, indices, settings)
    except FrameCountError as error:
        num_frames = error.decoded
        indices = np.asarray(sample(num_frames), dtype=np.int64)
        crops, positions = decode_crops(path, indices, settings)
    return SampledCrops(info, num_frames, indices, crops, positions)


def video_clips(
    path: str | os.PathLike, settings: ClipSettings, num_clips: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The test clips of a video: `(clips (N, T, S, S, 3) float32 in [0, 255], indices (N, T))`.

    One clip is the centre window; more are evenly spaced, the first at frame 0 and the
    last ending at the video's end (mmaction's `SampleFrames` test mode). A video shorter
    than a clip's span wraps around (mmaction's "loop"), with a warning naming it.

    Raises:
      VideoDecodeError: the video is missing or cannot be decoded.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1; got {num_clips}.")
    sampled = sample_crops(path, settings, lambda num_frames: multi_clip_indices(
        num_frames, settings.frames, settings.frame_interval, num_clips))
    warn_if_short(path, sampled.num_frames, settings)
    return sampled.clips(), sampled.indices
