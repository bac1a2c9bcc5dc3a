"""Read video files with PyAV: probe metadata, decode selected frames as RGB arrays.

Frames come out upright (the container's display rotation is applied, so portrait
phone videos decode as portrait), optionally resampled to a constant frame rate by
timestamp (variable-frame-rate sources) and resized to a short side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from typing import Callable, Container, Iterator, Sequence

import av
import numpy as np

# Tolerance for comparing frame times in seconds (timestamps are rationals turned into floats).
_TIME_EPS = 1e-6
# Above this a stream's "frame rate" is its time base's rate (DV reports 60000), not frames.
_MAX_FPS = 1000.0
# FFmpeg demuxers that open plain text (lists of videos, notes) as a "video" of rendered text.
_TEXT_DEMUXERS = frozenset({"tty"})


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
      num_frames: frames in the stream: its packets, counted without decoding, or the
        header's count when that is smaller. A header that counts more (a file cut
        short) is warned about. Damaged packets are counted but do not decode:
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

    Decodes only the first frame (the rotation lives in its side data) and reads the
    packets without decoding them to count the frames.

    Raises:
      VideoDecodeError: the file is missing, not a video, or has no decodable frame.
    """
    path = os.fspath(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            # Damage is reported by the reads that follow, not by a probe.
            first = next((frame for frame, _ in _timed_frames(container, stream, _Damage(path))),
                         None)
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error
        if first is None:
            raise VideoDecodeError(path, "the video stream holds no decodable frame")
        header_frames = int(stream.frames or 0)
        # Counting packets reads the file without decoding: the header may have no count
        # (WebM, MKV) or over-count (a file cut short keeps its header).
        num_frames = _count_packets(path)
        if 0 < header_frames < num_frames:
            num_frames = header_frames  # e.g. packed B-frames: more packets than frames
        elif header_frames > num_frames:
            warnings.warn(f"{path}: its header counts {header_frames} frames but the file holds "
                          f"{num_frames} (cut short?); frames are sampled from those {num_frames}.",
                          stacklevel=2)
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


@dataclasses.dataclass(frozen=True)
class DecodedFrame:
    """One frame of `iter_frames`.

    Attributes:
      index: position in the decoded sequence (after `fps` resampling), from 0.
      time: presentation time in seconds after the first frame, from the timestamps (a
        variable-frame-rate video's frames are not evenly spaced).
      image: upright RGB `uint8` `(H, W, 3)` (through `transform` if given), or None for a
        frame not asked for.
    """

    index: int
    time: float
    image: np.ndarray | None


def iter_frames(
    path: str | os.PathLike,
    short_side: int | None = None,
    fps: float | None = None,
    images_for: Container[int] | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[DecodedFrame]:
    """Decodes a video frame by frame, in display order, holding one frame at a time.

    A packet that fails to decode (damage in the file) is skipped, as players do: its
    frames are missing from the sequence, and one warning per file says how many packets
    and where the first was. Frames of another size than the first (a stream that changes
    resolution) are resized to the first frame's size.

    Args:
      path: the video file.
      short_side: resize so the shorter display side has this many pixels (see
        `read_frames`).
      fps: resample to this constant rate by timestamp (see `read_frames`).
      images_for: indices whose image to convert; other frames come with `image=None`
        (converting costs more than decoding). None converts every frame.
      transform: applied to each converted image, e.g. a crop: only its result is kept.

    Raises:
      VideoDecodeError: the file is missing or broken, or decodes to no frame (raised
        when the iteration reaches the problem).
    """
    path = os.fspath(path)
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive; got {fps}.")
    if short_side is not None and short_side <= 0:
        raise ValueError(f"short_side must be positive; got {short_side}.")
    damage = _Damage(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        # Frame threading: several frames decode at once, the order is kept.
        stream.thread_type = "AUTO"
        frames = _timed_frames(container, stream, damage)
        if fps is not None:
            frames = _resample(frames, fps, _stream_fps(stream))
        size = None
        count = 0
        try:
            for index, (frame, time) in enumerate(frames):
                count = index + 1
                image = None
                if images_for is None or index in images_for:
                    size = size or _display_size(frame, short_side)
                    image = _to_rgb(frame, size)
                    if transform is not None:
                        image = transform(image)
                yield DecodedFrame(index, time, image)
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error
        finally:
            damage.report()
    if count == 0:
        raise VideoDecodeError(path, damage.reason or "the video stream holds no decodable frame")


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    short_side: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Decodes frames of a video as upright RGB `uint8` `(T, H, W, 3)`.

    Damaged packets are skipped and a resolution change is resized away (see
    `iter_frames`).

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
      transform: applied to each frame as it decodes, e.g. a crop (see `iter_frames`):
        only its results are held and stacked.

    Raises:
      FrameCountError: a requested index is past the frames the video decodes to (its
        `decoded` attribute says how many do).
      VideoDecodeError: the file is missing or broken, or decodes to no frame.
    """
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
    frames = iter_frames(path, short_side, fps, images_for=wanted, transform=transform)
    with contextlib.closing(frames):
        for frame in frames:
            if max_frames is not None and frame.index >= max_frames:
                break
            count = frame.index + 1
            if wanted is None:
                outputs.append(frame.image)
                continue
            for position in wanted.get(frame.index, ()):
                outputs[position] = frame.image
            if frame.index >= last_needed:
                break
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
    if container.format.name in _TEXT_DEMUXERS:
        container.close()
        raise VideoDecodeError(path, "a text file, not a video (FFmpeg would render its "
                                     "characters as ANSI art)")
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "the file holds no video stream")
    return container


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """The stream to decode: FFmpeg's choice among the video streams that are not an
    attached picture (the cover art of an audio file, a thumbnail)."""
    moving = [stream for stream in container.streams.video
              if not stream.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        raise VideoDecodeError(path, "the file holds no video stream, only an attached picture "
                                     "(cover art)")
    try:
        best = container.streams.best("video")
    except (av.FFmpegError, ValueError):
        best = None
    return best if best in moving else moving[0]


def _count_packets(path: str) -> int:
    """Counts video packets (one per frame) without decoding, for headers without a count."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except (av.FFmpegError, OSError) as error:
            raise VideoDecodeError(path, f"{type(error).__name__}: {error}") from error


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's nominal frame rate: its average rate, unless that is the time base's
    rate rather than a frame rate (DV files report 60000), then FFmpeg's guess."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= _MAX_FPS:
            return float(rate)
    return 0.0


class _Damage:
    """Counts the packets of a file that failed to decode, and warns once about them."""

    def __init__(self, path: str):
        self.path, self.packets, self.first_time, self.reason = path, 0, None, None

    def add(self, packet: av.Packet, error: Exception) -> None:
        self.packets += 1
        if self.reason is None:
            self.reason = f"{type(error).__name__}: {error}"
            if packet.pts is not None and packet.time_base is not None:
                self.first_time = float(packet.pts * packet.time_base)

    def report(self) -> None:
        if self.packets:
            where = (f" (the first at {self.first_time:.2f} s)" if self.first_time is not None
                     else "")
            warnings.warn(f"{self.path}: {self.packets} damaged packet(s) could not be decoded"
                          f"{where} and their frames are left out; {self.reason}", stacklevel=3)
            self.packets = 0


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, damage: _Damage
) -> Iterator[tuple[av.VideoFrame, float]]:
    """Yields `(frame, seconds after the first frame)` in display order, times increasing.

    Packets are decoded one by one so that a damaged one is skipped (`damage` counts it)
    rather than ending the video. A frame without a timestamp, or whose timestamp does
    not move forward (broken muxing), is placed one nominal frame period after the previous.
    """
    step = 1.0 / (_stream_fps(stream) or 25.0)
    first = previous = None  # the first frame's timestamp; the previous frame's time
    for packet in container.demux(stream):  # the last, empty packet flushes the decoder
        try:
            decoded = packet.decode()
        except av.FFmpegError as error:
            damage.add(packet, error)
            continue
        for frame in decoded:
            time = None
            if frame.time is not None:
                if first is None:
                    first = frame.time - (0.0 if previous is None else previous + step)
                time = frame.time - first
            if time is None or (previous is not None and time <= previous + _TIME_EPS):
                time = 0.0 if previous is None else previous + step
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
    held, held_time = None, 0.0
    k = 0
    for frame, time in frames:
        if held is None:
            held, held_time = frame, time
            continue
        while k * period < time - _TIME_EPS:
            yield held, k * period
            k += 1
        held, held_time = frame, time
    if held is None:
        return
    if held.duration and held.time_base is not None:
        end = held_time + float(held.duration * held.time_base)
    else:
        end = held_time + 1.0 / (source_fps or fps)
    while k * period < end - _TIME_EPS:
        yield held, k * period
        k += 1


def _display_size(frame: av.VideoFrame, short_side: int | None) -> tuple[int, int]:
    """The stored `(width, height)` a frame is converted at: resized so the short side is
    `short_side` (None: as stored)."""
    width, height = frame.width, frame.height
    if short_side is not None and min(width, height) != short_side:
        scale = short_side / min(width, height)
        # The short side is exact; the long side rounds half up like mmaction's rescale_size.
        if width <= height:
            width, height = short_side, int(height * scale + 0.5)
        else:
            width, height = int(width * scale + 0.5), short_side
    return width, height


def _clockwise_rotation(frame: av.VideoFrame) -> int:
    # VideoFrame.rotation is counter-clockwise in [-180, 180]; snap to quarter turns.
    return int(round(-frame.rotation / 90.0)) % 4 * 90


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """Converts to upright RGB at the stored `size` `(width, height)` (see `_display_size`)."""
    array = frame.to_ndarray(width=size[0], height=size[1], format="rgb24",
                             interpolation="BILINEAR")
    quarter_turns = _clockwise_rotation(frame) // 90
    if quarter_turns:
        array = np.rot90(array, k=-quarter_turns)  # np.rot90 turns counter-clockwise for k > 0
    return np.ascontiguousarray(array)
