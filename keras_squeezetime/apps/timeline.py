"""A timeline of a long video: sliding windows scored by any model kind, merged into segments.

`predict_long_video` slides the evaluation clip over the whole video every
`window_stride` frames and merges runs of windows with the same top class into segments.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np

from keras_squeezetime.apps.predictor import Predictor, load_predictor
from keras_squeezetime.model_config import ClipSettings
from keras_squeezetime.video.clips import sample_crops
from keras_squeezetime.video.frame_indices import sliding_window_indices, window_starts

# Rate assumed for a stream that reports none (timestamps only; sampling is by frame index).
_FALLBACK_FPS = 25.0
# Clips assembled at once from the shared uint8 crops: bounds memory of long videos.
_BATCH = 8


def file_stem(video: str | os.PathLike) -> str:
    """The name `Timeline.save` gives a video's files: its file name without extension."""
    return os.path.splitext(os.path.basename(os.fspath(video)))[0]


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of consecutive windows with the same top class.

    Times and frames (end exclusive) tile the video: each window owns the stretch
    closer to its centre than to its neighbours' centres, the first window from its
    start and the last to its end, so overlapping windows give non-overlapping segments.

    Attributes:
      start_time, end_time: seconds.
      start_frame, end_frame: source frames, end exclusive.
      first_window, last_window: window indices, inclusive.
      index, label: the class.
      score: mean probability of the class over the segment's windows.
    """

    start_time: float
    end_time: float
    start_frame: int
    end_frame: int
    first_window: int
    last_window: int
    index: int
    label: str
    score: float


def merge_segments(
    probabilities: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    fps: float,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.0,
    min_windows: int = 1,
) -> list[Segment]:
    """Merges consecutive windows with the same top class into segments.

    Args:
      probabilities: `(windows, classes)`.
      starts, ends: each window's first frame and end frame (exclusive).
      fps: frames per second, for the times.
      class_names: names for the labels (else `"class <i>"`).
      min_score: windows whose top probability is below this belong to no segment
        (they split runs: an uncertain stretch is a gap, not a label).
      min_windows: runs of fewer windows are dropped (left as gaps).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(starts) or len(starts) != len(ends):
        raise ValueError(f"Need probabilities (windows, classes) and one start and end per window; "
                         f"got {probabilities.shape}, {starts.shape}, {ends.shape}.")
    if len(probabilities) == 0:
        return []
    centres = (starts + ends) / 2
    bounds = np.concatenate([[starts[0]], (centres[:-1] + centres[1:]) / 2, [ends[-1]]])
    best = probabilities.argmax(axis=1)
    confident = probabilities.max(axis=1) >= min_score
    segments = []
    first = 0
    for i in range(1, len(best) + 1):
        run_ends = i == len(best) or best[i] != best[first] or confident[i] != confident[first]
        if not run_ends:
            continue
        if confident[first] and i - first >= max(1, min_windows):
            index = int(best[first])
            start_frame, end_frame = int(round(bounds[first])), int(round(bounds[i]))
            segments.append(Segment(
                start_time=start_frame / fps, end_time=end_frame / fps,
                start_frame=start_frame, end_frame=end_frame,
                first_window=first, last_window=i - 1, index=index,
                label=class_names[index] if class_names else f"class {index}",
                score=float(probabilities[first:i, index].mean()),
            ))
        first = i
    return segments


@dataclasses.dataclass
class Timeline:
    """Per-window probabilities of a long video and the segments merged from them.

    Attributes:
      path: the video.
      fps: its frame rate.
      num_frames: its frame count.
      settings: the clip settings of every window.
      window_stride: frames between window starts.
      starts, ends: each window's first source frame and end frame (exclusive).
      probabilities: `(windows, classes)`.
      class_names: one per class, or None.
      segments: merged runs (see `merge_segments`).
    """

    path: str
    fps: float
    num_frames: int
    settings: ClipSettings
    window_stride: int
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    class_names: list[str] | None
    segments: list[Segment]

    def label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else f"class {index}"

    def to_csv(self, path: str | os.PathLike, what: str = "segments") -> str:
        """Writes one row per segment (`what="segments"`) or per window (`"windows"`)."""
        if what == "segments":
            fields = [f.name for f in dataclasses.fields(Segment)]
            rows = [[getattr(s, f) for f in fields] for s in self.segments]
        elif what == "windows":
            fields = ["window", "start_frame", "end_frame", "start_time", "end_time", "index",
                      "label", "probability"]
            rows = []
            for w, (start, end, probs) in enumerate(zip(self.starts, self.ends, self.probabilities)):
                best = int(np.argmax(probs))
                rows.append([w, int(start), int(end), start / self.fps, end / self.fps, best,
                             self.label(best), float(probs[best])])
        else:
            raise ValueError(f"what must be 'segments' or 'windows'; got {what!r}.")
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(fields)
            writer.writerows(rows)
        return os.fspath(path)

    def to_dict(self, top: int = 5) -> dict[str, Any]:
        """JSON-ready: video, window settings, each window's `top` classes, the segments."""
        windows = []
        for start, end, probs in zip(self.starts, self.ends, self.probabilities):
            order = np.argsort(-probs, kind="stable")[:top]
            windows.append({
                "start_frame": int(start), "end_frame": int(end),
                "start_time": start / self.fps, "end_time": end / self.fps,
                "top": [{"index": int(i), "label": self.label(int(i)),
                         "probability": float(probs[i])} for i in order],
            })
        return {
            "video": self.path, "fps": self.fps, "num_frames": self.num_frames,
            "frames": self.settings.frames, "frame_interval": self.settings.frame_interval,
            "window_stride": self.window_stride,
            "windows": windows,
            "segments": [dataclasses.asdict(s) for s in self.segments],
        }

    def to_json(self, path: str | os.PathLike, top: int = 5) -> str:
        """Writes `to_dict(top)` as JSON."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(top), handle, indent=2)
        return os.fspath(path)

    def save(self, folder: str | os.PathLike, top: int = 5) -> dict[str, str]:
        """Writes `<video>.timeline.csv` (segments), `<video>.windows.csv`,
        `<video>.timeline.json` (each window's `top` classes) and `<video>.timeline.png`
        into `folder` (created if missing); returns their paths by kind."""
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(os.fspath(folder), file_stem(self.path))
        return {
            "segments_csv": self.to_csv(stem + ".timeline.csv"),
            "windows_csv": self.to_csv(stem + ".windows.csv", what="windows"),
            "json": self.to_json(stem + ".timeline.json", top=top),
            "png": self.plot_png(stem + ".timeline.png"),
        }

    def plot_png(self, path: str | os.PathLike, classes: int = 5) -> str:
        """Draws the probabilities of the `classes` most likely classes over time, and the segments."""
        from matplotlib.figure import Figure  # No pyplot: no global state, any backend.

        times = (self.starts + self.ends) / 2 / self.fps
        peak = self.probabilities.max(axis=0)
        shown = np.argsort(-peak, kind="stable")[: min(classes, len(peak))]
        figure = Figure(figsize=(10, 4.5), layout="constrained")
        curves, bars = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        colors = {}
        for k, index in enumerate(shown):
            (line,) = curves.plot(times, self.probabilities[:, index], marker="o", markersize=3,
                                  label=self.label(int(index)))
            colors[int(index)] = line.get_color()
        curves.set_ylim(0, 1.02)
        curves.set_ylabel("probability")
        curves.legend(loc="upper right", fontsize="small")
        curves.set_title(os.path.basename(self.path))
        for segment in self.segments:
            width = segment.end_time - segment.start_time
            bars.broken_barh([(segment.start_time, width)], (0, 1),
                             color=colors.get(segment.index, "0.6"))
            bars.text(segment.start_time + width / 2, 0.5, segment.label, ha="center",
                      va="center", fontsize="small", clip_on=True)
        bars.set_xlim(0, max(self.num_frames / self.fps, times.max()))
        bars.set_yticks([])
        bars.set_xlabel("time (s)")
        figure.savefig(path, dpi=100)
        return os.fspath(path)


def predict_long_video(
    path: str | os.PathLike,
    model: "str | os.PathLike | Predictor | Any",
    window_stride: int | None = None,
    *,
    labels: str | os.PathLike | Sequence[str] | None = None,
    frames: int | None = None,
    frame_interval: int | None = None,
    image_size: int | None = None,
    short_side: int | None = None,
    min_score: float = 0.0,
    min_windows: int = 1,
) -> Timeline:
    """Scores a long video with sliding windows and merges them into labelled segments.

    Each window is one clip of `frames` frames every `frame_interval` (16 every 4th for
    the official models: 61 source frames), starting every `window_stride` source frames
    (default: half a window, so windows overlap by half). Each sampled frame is decoded
    once; its uint8 crop is kept, so memory grows with the number of distinct sampled
    frames (full decoded frames are held briefly by the decoder call).

    Args:
      path: the video.
      model: see `predict_video`.
      window_stride: source frames between window starts.
      labels, frames, frame_interval, image_size, short_side: see `predict_video`.
      min_score, min_windows: see `merge_segments`.

    Raises:
      VideoDecodeError: the video is missing or cannot be decoded.
      FileNotFoundError, ValueError: see `load_predictor`.
    """
    predictor = load_predictor(model, labels, frames, frame_interval, image_size, short_side)
    settings = predictor.settings
    stride = window_stride if window_stride is not None else max(1, settings.span // 2)
    if stride < 1:
        raise ValueError(f"window_stride must be >= 1; got {stride}.")
    sampled = sample_crops(path, settings,
                           lambda num_frames: sliding_window_indices(
                               num_frames, settings.frames, settings.frame_interval, stride))
    num_frames = sampled.num_frames
    fps = sampled.info.fps if sampled.info.fps > 0 else _FALLBACK_FPS
    starts = window_starts(num_frames, settings.span, stride)
    ends = np.minimum(starts + settings.span, num_frames)
    # Clips overlap, so they are assembled batch by batch from the shared uint8 crops.
    probabilities = np.concatenate([
        predictor.predict_clips(sampled.clips(i, i + _BATCH))
        for i in range(0, len(starts), _BATCH)
    ])
    segments = merge_segments(probabilities, starts, ends, fps, predictor.class_names,
                              min_score, min_windows)
    return Timeline(os.fspath(path), fps, num_frames, settings, stride, starts, ends,
                    probabilities, predictor.class_names, segments)
