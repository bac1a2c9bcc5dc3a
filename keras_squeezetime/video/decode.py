"""Read video files with PyAV: probe metadata, decode selected frames as RGB arrays.

Frames come out upright (the container's display rotation is applied, so portrait
phone videos decode as portrait), optionally resampled to a constant frame rate by
timestamp (variable-frame-rate sources) and resized to a short side.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import av
import numpy as np

# Tolerance for comparing frame times in seconds (timestamps are rationals turned into floats).
_TIME_EPS = 1e-6


class VideoDecodeError(Exception):
    """A video could not be opened or decoded; names the file and the cause."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"Cannot decode video {self.path!r}: {reason}")

    def __reduce__(self):
        # Keeps the (path, reason) constructor when the error crosses a process boundary.
        return (type(self), (self.path, self.reason))


class FrameCountError(VideoDecodeError):
    """Frames were requested past the end of what the video decodes to.

    Headers can over-count (OpenCV's sample `tree.avi` claims 444 frames and decodes 68;
    a file cut short keeps its header's count): `decoded` is the count that exists, so a
    caller can sample again from it.
    """

    def __init__(self, path: str | os.PathLike, requested: int, decoded: int):
        self.requested = int(requested)
        self.decoded = int(decoded)
        super().__init__(path, f"frame index {self.requested} requested but the video decodes "
                               f"to {self.decoded} frames")

    def __reduce__(self):
        return (type(self), (self.path, self.requested, self.decoded))


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file's first video stream.

    Attributes:
      path: the file.
      num_frames: frames in the stream, from the container header, or by counting
        packets when the header has no count (WebM, MKV). A header can over-count:
        `read_frames` then raises `FrameCountError` with the count that decodes.
      fps: average frame rate of the stream.
      duration: seconds.
      width: display width, i.e. after the rotation is applied.
      height: display height, i.e. after the rotation is applied.
      rotation: clockwise degrees (0, 90, 180, 270) the stored pixels are turned for
        display; the meaning of the legacy `rotate` tag.
      codec: decoder name, e.g. "h264".
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    codec: str


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Returns frame count, rate, duration, display size and rotation of a video.

    Decodes only the first frame (the rotation lives in its side data).

    Raises:
      VideoDecodeError: the file is missing, not a video, or has no decodable frame.
    """
    path = os.fspath(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error
        if first is None:
            raise VideoDecodeError(path, "the video stream holds no decodable frame")
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            num_frames = _count_packets(path)
        fps = _stream_fps(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = num_frames / fps if fps else 0.0
        if fps <= 0 and duration > 0:
            fps = num_frames / duration
        rotation = _clockwise_rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path,
            num_frames=num_frames,
            fps=fps,
            duration=duration,
            width=width,
            height=height,
            rotation=rotation,
            codec=stream.codec_context.name,
        )


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    short_side: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Decodes frames of a video as upright RGB `uint8` `(T, H, W, 3)`.

    Args:
      path: the video file.
      indices: frame indices to return, in this order (repeats allowed, e.g. the loop
        padding of `dense_indices`). They index the frame sequence after `fps`
        resampling and the `max_frames` cap. None returns every frame.
      short_side: resize so the shorter display side has this many pixels, keeping the
        aspect ratio (upscales small videos too, as mmaction's `Resize((-1, 256))`).
      fps: resample to this constant rate by timestamp: output frame k is the source
        frame on screen at time `k / fps` after the first frame. Handles variable frame
        rate sources; None keeps every decoded frame.
      max_frames: keep at most the first `max_frames` frames of the sequence.

    Raises:
      FrameCountError: a requested index is past the frames the video decodes to (its
        `decoded` attribute says how many do).
      VideoDecodeError: the file is missing or broken, or decodes to no frame.
    """
    path = os.fspath(path)
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive; got {fps}.")
    if short_side is not None and short_side <= 0:
        raise ValueError(f"short_side must be positive; got {short_side}.")
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"max_frames must be positive; got {max_frames}.")
    wanted: dict[int, list[int]] | None = None
    if indices is not None:
        indices = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not indices:
            raise ValueError("indices is empty.")
        if min(indices) < 0:
            raise ValueError(f"Frame indices must be >= 0; got {min(indices)}.")
        wanted = {}
        for position, index in enumerate(indices):
            wanted.setdefault(index, []).append(position)
        if max_frames is not None and max(indices) >= max_frames:
            raise ValueError(f"Index {max(indices)} is past max_frames={max_frames}.")

    outputs: list[np.ndarray | None] = [None] * len(indices) if indices is not None else []
    last_needed = max(wanted) if wanted else None
    count = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        # Frame threading: several frames decode at once, the order is kept.
        stream.thread_type = "AUTO"
        try:
            frames = _timed_frames(container, stream)
            if fps is not None:
                frames = _resample(frames, fps, _stream_fps(stream))
            for index, frame in enumerate(frame for frame, _ in frames):
                if max_frames is not None and index >= max_frames:
                    break
                count = index + 1
                if wanted is None:
                    outputs.append(_to_rgb(frame, short_side))
                    continue
                if index in wanted:
                    array = _to_rgb(frame, short_side)
                    for position in wanted[index]:
                        outputs[position] = array
                if index >= last_needed:
                    break
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error
    if count == 0:
        raise VideoDecodeError(path, "the video stream holds no decodable frame")
    if wanted is not None and last_needed >= count:
        raise FrameCountError(path, last_needed, count)
    return np.stack(outputs)


def _open(path: str) -> av.container.InputContainer:
    """Opens `path` for reading, turning every failure into a `VideoDecodeError`."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "no such file")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes)")
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        reason = f"not a readable container ({type(error).__name__}: {error})"
        raise VideoDecodeError(path, reason) from error
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "the file holds no video stream")
    return container


def _count_packets(path: str) -> int:
    """Counts video packets (one per frame) without decoding, for headers without a count."""
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[tuple[av.VideoFrame, float]]:
    """Yields `(frame, presentation time in seconds)` in display order, times non-decreasing."""
    step = 1.0 / (_stream_fps(stream) or 25.0)
    previous = None
    for index, frame in enumerate(container.decode(stream)):
        time = frame.time
        if time is None:  # no timestamps (some AVI/raw streams): assume the nominal rate
            time = index * step if previous is None else previous + step
        if previous is not None and time < previous:
            time = previous  # broken timestamps must not reorder frames
        previous = time
        yield frame, time


def _resample(
    frames: Iterator[tuple[av.VideoFrame, float]], fps: float, source_fps: float
) -> Iterator[tuple[av.VideoFrame, float]]:
    """Resamples to a constant `fps`: for each target time, the frame on screen at that time.

    A frame is on screen from its timestamp until the next frame's; the last one for
    its own duration (or one nominal source frame period).
    """
    period = 1.0 / fps
    start = None
    held, held_time = None, 0.0
    k = 0
    for frame, time in frames:
        if held is None:
            start, held, held_time = time, frame, time
            continue
        while start + k * period < time - _TIME_EPS:
            yield held, start + k * period
            k += 1
        held, held_time = frame, time
    if held is None:
        return
    if held.duration and held.time_base is not None:
        end = held_time + float(held.duration * held.time_base)
    else:
        end = held_time + 1.0 / (source_fps or fps)
    while start + k * period < end - _TIME_EPS:
        yield held, start + k * period
        k += 1


def _clockwise_rotation(frame: av.VideoFrame) -> int:
    # VideoFrame.rotation is counter-clockwise in [-180, 180]; snap to quarter turns.
    return int(round(-frame.rotation / 90.0)) % 4 * 90


def _to_rgb(frame: av.VideoFrame, short_side: int | None) -> np.ndarray:
    """Converts to upright RGB, resized so the short side is `short_side`."""
    width, height = frame.width, frame.height
    if short_side is not None and min(width, height) != short_side:
        scale = short_side / min(width, height)
        # The short side is exact; the long side rounds half up like mmaction's rescale_size.
        if width <= height:
            width, height = short_side, int(height * scale + 0.5)
        else:
            width, height = int(width * scale + 0.5), short_side
    array = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")
    quarter_turns = _clockwise_rotation(frame) // 90
    if quarter_turns:
        array = np.rot90(array, k=-quarter_turns)  # np.rot90 turns counter-clockwise for k > 0
    return np.ascontiguousarray(array)
