"""A timeline of a long video: sliding windows scored by any model kind, merged into segments.

`predict_long_video` slides the evaluation clip over the whole video every
`window_stride` frames and merges runs of windows with the same top class into segments.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import warnings
from typing import Any, Sequence

import numpy as np

from keras_squeezetime.apps.predictor import Predictor, load_predictor
from keras_squeezetime.labels import rank_classes
from keras_squeezetime.model_config import ClipSettings
from keras_squeezetime.video.clips import crop_transform, decode_crops, warn_if_short
from keras_squeezetime.video.decode import iter_frames, probe_video
from keras_squeezetime.video.frame_indices import sliding_window_indices, window_starts
from keras_squeezetime.worker_pool import Progress

logger = logging.getLogger(__name__)

# Rate assumed for a stream that reports none (timestamps only; sampling is by frame index).
_FALLBACK_FPS = 25.0
# Windows scored at once as they complete.
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
    frame_times: np.ndarray | None = None,
) -> list[Segment]:
    """Merges consecutive windows with the same top class into segments.

    Args:
      probabilities: `(windows, classes)`.
      starts, ends: each window's first frame and end frame (exclusive).
      fps: frames per second, for the times when `frame_times` is not given.
      class_names: names for the labels (else `"class <i>"`).
      min_score: windows whose top probability is below this belong to no segment
        (they split runs: an uncertain stretch is a gap, not a label).
      min_windows: runs of fewer windows are dropped (left as gaps).
      frame_times: each frame's time in seconds and, last, the end of the video
        (`num_frames + 1` values): times from the video's timestamps, which a variable
        frame rate spaces unevenly.
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
                start_time=seconds_at(start_frame, fps, frame_times),
                end_time=seconds_at(end_frame, fps, frame_times),
                start_frame=start_frame, end_frame=end_frame,
                first_window=first, last_window=i - 1, index=index,
                label=class_names[index] if class_names else f"class {index}",
                score=float(probabilities[first:i, index].mean()),
            ))
        first = i
    return segments


def seconds_at(frame: float | np.ndarray, fps: float,
               frame_times: np.ndarray | None = None) -> float | np.ndarray:
    """The time in seconds of frame position `frame` (fractional positions interpolate):
    from `frame_times` (see `merge_segments`) when given, else `frame / fps`."""
    if frame_times is None:
        return frame / fps
    times = np.interp(frame, np.arange(len(frame_times)), frame_times)
    return float(times) if np.ndim(times) == 0 else times


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
      frame_times: each frame's time from the video's timestamps and, last, the video's
        end (see `merge_segments`); None: times are `frame / fps`.
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
    frame_times: np.ndarray | None = None

    def seconds(self, frame: float | np.ndarray) -> float | np.ndarray:
        """The time in seconds of frame position `frame` (see `seconds_at`)."""
        return seconds_at(frame, self.fps, self.frame_times)

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
            for w, (start, end, probs) in enumerate(
                    zip(self.starts, self.ends, self.probabilities)):
                best = int(np.argmax(probs))
                rows.append([w, int(start), int(end), self.seconds(start), self.seconds(end), best,
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
            order = rank_classes(probs)[:top]
            windows.append({
                "start_frame": int(start), "end_frame": int(end),
                "start_time": self.seconds(start), "end_time": self.seconds(end),
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
        """Draws the probabilities of the `classes` most likely classes over time, and the
        segments."""
        from matplotlib.figure import Figure  # No pyplot: no global state, any backend.

        times = self.seconds((self.starts + self.ends) / 2)
        peak = self.probabilities.max(axis=0)
        shown = rank_classes(peak)[: min(classes, len(peak))]
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
        bars.set_xlim(0, max(self.seconds(self.num_frames), times.max()))
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
    (default: half a window, so windows overlap by half). The video is decoded once,
    front to back; each window is scored as soon as its frames have decoded, and a
    frame's crop is dropped once the last window using it is scored, so memory stays
    that of a few windows however long the video. Times come from the frames'
    timestamps (variable frame rates included); progress is logged every 10 s.

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
    info = probe_video(path)
    warn_if_short(path, info.num_frames, settings)
    fps = info.fps if info.fps > 0 else _FALLBACK_FPS
    scored = _score_windows(path, predictor, info.num_frames, stride, fps)
    num_frames = len(scored.frame_times) - 1
    if scored.windows < len(scored.indices):
        # Damaged packets: fewer frames decode than the file holds. The windows within
        # them stand; those past the end are slid again over the frames that decode.
        indices = sliding_window_indices(num_frames, settings.frames, settings.frame_interval,
                                         stride)
        kept = _common_rows(scored.indices[:scored.windows], indices)
        with warnings.catch_warnings():  # the first pass has warned about the damage
            warnings.simplefilter("ignore", UserWarning)
            crops, positions = decode_crops(path, indices[kept:], settings)
        scored.probabilities = np.concatenate([scored.probabilities[:kept]] + [
            predictor.predict_clips(crops[positions[i:i + _BATCH]].astype(np.float32))
            for i in range(0, len(positions), _BATCH)])
    starts = window_starts(num_frames, settings.span, stride)
    ends = np.minimum(starts + settings.span, num_frames)
    segments = merge_segments(scored.probabilities, starts, ends, fps, predictor.class_names,
                              min_score, min_windows, frame_times=scored.frame_times)
    return Timeline(os.fspath(path), fps, num_frames, settings, stride, starts, ends,
                    scored.probabilities, predictor.class_names, segments, scored.frame_times)


@dataclasses.dataclass
class _ScoredWindows:
    indices: np.ndarray  # (windows, frames) planned from the probed frame count
    windows: int  # how many of them were scored (all, unless fewer frames decoded)
    probabilities: np.ndarray
    frame_times: np.ndarray  # every decoded frame's time, then the end


def _score_windows(path: str | os.PathLike, predictor: Predictor, num_frames: int, stride: int,
                   fps: float) -> _ScoredWindows:
    """Decodes the video once, front to back, scoring each window as its last frame
    arrives: only the crops of windows not yet scored are held, so memory does not grow
    with the video's length."""
    settings = predictor.settings
    indices = sliding_window_indices(num_frames, settings.frames, settings.frame_interval, stride)
    last_use = {}  # frame -> the last window that needs its crop
    for window, row in enumerate(indices):
        for index in row.tolist():
            last_use[index] = window
    complete_at = indices.max(axis=1)  # non-decreasing: windows complete in order
    crops: dict[int, np.ndarray] = {}
    times: list[float] = []
    batch: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    window = 0
    frames = iter_frames(path, settings.short_side, images_for=last_use,
                         transform=crop_transform(settings.image_size))
    progress = Progress(len(indices), label=os.path.basename(os.fspath(path)), unit="windows",
                        verb="scored", log=logger.info)

    def score_batch() -> None:
        probabilities.append(predictor.predict_clips(np.stack(batch).astype(np.float32)))
        for _ in batch:
            progress.step()
        batch.clear()

    with contextlib.closing(frames):
        for frame in frames:
            times.append(frame.time)
            if frame.image is not None:
                crops[frame.index] = frame.image
            while window < len(indices) and complete_at[window] <= frame.index:
                batch.append(np.stack([crops[i] for i in indices[window].tolist()]))
                for index in set(indices[window].tolist()):
                    if last_use[index] == window:
                        del crops[index]
                window += 1
                if len(batch) == _BATCH:
                    score_batch()
            if frame.index + 1 >= num_frames:
                break
    if batch:  # the last windows, fewer than a batch
        score_batch()
    # The last frame lasts one nominal period (iter_frames has raised if none decoded).
    frame_times = np.asarray(times + [times[-1] + 1.0 / fps], dtype=np.float64)
    scores = (np.concatenate(probabilities) if probabilities
              else np.zeros((0, predictor.num_classes), np.float32))
    return _ScoredWindows(indices, window, scores, frame_times)


def _common_rows(done: np.ndarray, planned: np.ndarray) -> int:
    """How many leading rows of `done` and `planned` are the same windows."""
    count = 0
    for old, new in zip(done, planned):
        if not np.array_equal(old, new):
            break
        count += 1
    return count
