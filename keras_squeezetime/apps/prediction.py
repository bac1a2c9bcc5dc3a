"""Classify video files with any model kind: one clip per video, or several averaged.

The clips are the evaluation clips of `keras_squeezetime.video.clips` (mmaction's
`SampleFrames` test mode: the centre window of `frames` frames every `frame_interval`,
or `num_clips` evenly spaced windows whose probabilities are averaged).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple, Sequence

import numpy as np

from keras_squeezetime.apps.predictor import Predictor, load_predictor
from keras_squeezetime.labels import top_classes
from keras_squeezetime.video.clips import video_clips


class Prediction(NamedTuple):
    """One class of a ranking: `(index, label, probability)` (ranked by
    `labels.top_classes`, as `decode_predictions` ranks)."""

    index: int
    label: str
    probability: float


@dataclasses.dataclass
class VideoPrediction:
    """The result of `predict_video`.

    Attributes:
      path: the video.
      top: best classes first.
      probabilities: `(num_classes,)`, averaged over the clips.
      frame_indices: `(num_clips, frames)` source frames each clip was made of.
    """

    path: str
    top: list[Prediction]
    probabilities: np.ndarray
    frame_indices: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: the video, its top classes and the sampled frames."""
        return {
            "video": self.path,
            "predictions": [p._asdict() for p in self.top],
            "frame_indices": self.frame_indices.tolist(),
        }


def predict_video(
    path: str | os.PathLike,
    model: "str | os.PathLike | Predictor | Any",
    top: int = 5,
    *,
    labels: str | os.PathLike | Sequence[str] | None = None,
    frames: int | None = None,
    frame_interval: int | None = None,
    image_size: int | None = None,
    short_side: int | None = None,
    num_clips: int = 1,
) -> VideoPrediction:
    """Classifies a video file with any model kind.

    Args:
      path: the video.
      model: a `Predictor`, a `keras.Model`, or what `load_predictor` loads (a `.keras`
        file or model folder, a `.tflite`, an official `.pth`, a preset name). Load
        once with `load_predictor` to classify many videos.
      top: classes to return, best first.
      labels: class names overriding the model's (their count must match).
      frames: clip length (must match the model's).
      frame_interval: step between sampled frames.
      image_size: crop side.
      short_side: short side before cropping.
      num_clips: 1 takes the centre clip; more take evenly spaced clips (the first at
        frame 0, the last ending at the video's end) and average their probabilities.
        Clips are sampled from the frames that decode when the header over-counts.

    Raises:
      VideoDecodeError: the video is missing or cannot be decoded.
      FileNotFoundError, ValueError: see `load_predictor`.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1; got {num_clips}.")
    if top < 1:
        raise ValueError(f"top must be >= 1; got {top}.")
    predictor = load_predictor(model, labels, frames, frame_interval, image_size, short_side)
    clips, indices = video_clips(path, predictor.settings, num_clips)
    probabilities = predictor.predict_clips(clips).mean(axis=0)
    names = [predictor.label(i) for i in range(predictor.num_classes)]
    ranking = [Prediction(*entry) for entry in top_classes(probabilities[None], top, names)[0]]
    return VideoPrediction(os.fspath(path), ranking, probabilities, indices)
