"""Which frames of a video make a clip: pure-numpy frame-index sampling.

Follows mmaction2 (1.x) so clips match the official SqueezeTime pipeline:
`dense_indices` is `SampleFrames(clip_len, frame_interval, num_clips=1)` (paper:
16 frames every 4), `multi_clip_indices` is its test mode with several clips, and
`uniform_indices` is `UniformSample` (TSN-style: one frame per equal segment), and
`sliding_window_indices` the windows of a long-video timeline.
Videos shorter than the clip wrap around (`"loop"`, mmaction's default) or repeat
their last frame (`"repeat_last"`).
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.model_config import DEFAULT_FRAME_INTERVAL, DEFAULT_FRAMES

OUT_OF_BOUND_MODES = ("loop", "repeat_last")


def dense_indices(
    num_frames: int,
    clip_len: int = DEFAULT_FRAMES,
    interval: int = DEFAULT_FRAME_INTERVAL,
    mode: str = "random",
    offset: int | None = None,
    rng: np.random.Generator | None = None,
    out_of_bound: str = "loop",
) -> np.ndarray:
    """Indices of one dense clip: `clip_len` frames, `interval` frames apart.

    Args:
      num_frames: frames in the video (> 0).
      clip_len: frames in the clip.
      interval: step between sampled frames.
      mode: "random" (training: the start is uniform over every window that fits,
        `[0, num_frames - clip_len * interval]`) or "center" (validation: the middle of
        `[0, num_frames - ((clip_len - 1) * interval + 1)]`, mmaction2's test window).
      offset: an explicit start frame; overrides `mode`.
      rng: random generator for "random"; a fresh unseeded one when None.
      out_of_bound: "loop" wraps indices past the end (`i % num_frames`), "repeat_last"
        repeats the last frame.

    Returns:
      int64 array `(clip_len,)`, every value in `[0, num_frames)`.
    """
    _check(num_frames, clip_len, interval, out_of_bound)
    max_offset = max(num_frames - _window(clip_len, interval, test_mode=mode == "center"), 0)
    if offset is None:
        if mode == "random":
            rng = rng if rng is not None else np.random.default_rng()
            offset = int(rng.integers(0, max_offset + 1))
        elif mode == "center":
            offset = max_offset // 2
        else:
            raise ValueError(f"mode must be 'random' or 'center'; got {mode!r}.")
    elif offset < 0:
        raise ValueError(f"offset must be >= 0; got {offset}.")
    indices = offset + np.arange(clip_len, dtype=np.int64) * interval
    return _bound(indices, num_frames, out_of_bound)


def multi_clip_indices(
    num_frames: int,
    clip_len: int = DEFAULT_FRAMES,
    interval: int = DEFAULT_FRAME_INTERVAL,
    num_clips: int = 10,
    out_of_bound: str = "loop",
) -> np.ndarray:
    """Indices of `num_clips` dense clips evenly spaced over the video (multi-clip testing).

    The first clip starts at frame 0 and the last ends at the last full window, as
    mmaction2's `SampleFrames(test_mode=True)` (aligned with PySlowFast); one clip is
    the centre window.

    Returns:
      int64 array `(num_clips, clip_len)`.
    """
    _check(num_frames, clip_len, interval, out_of_bound)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1; got {num_clips}.")
    max_offset = max(num_frames - _window(clip_len, interval, test_mode=True), 0)
    if num_clips == 1:
        offsets = np.array([max_offset // 2])
    else:
        offsets = np.round(np.arange(num_clips) * (max_offset / (num_clips - 1))).astype(np.int64)
    indices = offsets[:, None] + np.arange(clip_len, dtype=np.int64)[None, :] * interval
    return _bound(indices, num_frames, out_of_bound)


def uniform_indices(
    num_frames: int,
    num_segments: int = DEFAULT_FRAMES,
    mode: str = "random",
    rng: np.random.Generator | None = None,
    num_clips: int = 1,
) -> np.ndarray:
    """TSN-style indices: the video cut into `num_segments` equal parts, one frame from each.

    mmaction2's `UniformSample`: segment `i` spans frames `round(s*i)..round(s*(i+1))`
    with `s = (num_frames - 1) / num_segments`.

    Args:
      num_frames: frames in the video (> 0).
      num_segments: frames in the clip.
      mode: "random" (training: a random frame of each segment) or "test"
        (deterministic: clip `k` of `num_clips` takes the frame `(k + 1) / (num_clips + 1)`
        of the way into each segment).
      rng: random generator for "random".
      num_clips: clips for "test".

    Returns:
      int64 array `(num_segments,)` for "random", `(num_clips, num_segments)` for "test".
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}.")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1; got {num_segments}.")
    seg_size = (num_frames - 1) / num_segments
    starts = np.round(seg_size * np.arange(num_segments)).astype(np.int64)
    if mode == "random":
        ends = np.round(seg_size * np.arange(1, num_segments + 1)).astype(np.int64)
        rng = rng if rng is not None else np.random.default_rng()
        return rng.integers(starts, ends + 1).astype(np.int64)
    if mode == "test":
        step = seg_size / (num_clips + 1)
        shifts = np.array([int(step * (k + 1)) for k in range(num_clips)], dtype=np.int64)
        return starts[None, :] + shifts[:, None]
    raise ValueError(f"mode must be 'random' or 'test'; got {mode!r}.")


def window_starts(num_frames: int, span: int, stride: int) -> np.ndarray:
    """First frames of the sliding windows over a video of `num_frames` frames.

    Windows of `span` frames start every `stride` frames; when the last regular window
    stops short of the end, one more window ends exactly at the last frame, so the
    whole video is covered. A video shorter than one window gets a single window at 0
    (its clip wraps around, as mmaction's sampling).
    """
    if num_frames < 1 or span < 1 or stride < 1:
        raise ValueError(f"num_frames, span and stride must be >= 1; got {num_frames}, {span}, "
                         f"{stride}.")
    if num_frames <= span:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, num_frames - span + 1, stride, dtype=np.int64)
    if starts[-1] + span < num_frames:
        starts = np.append(starts, num_frames - span)
    return starts


def sliding_window_indices(num_frames: int, clip_len: int, interval: int,
                           stride: int) -> np.ndarray:
    """Source frames `(windows, clip_len)` of dense clips sliding over the whole video:
    windows of `(clip_len - 1) * interval + 1` frames every `stride` frames (see
    `window_starts`); a video shorter than one window wraps around (`"loop"`)."""
    _check(num_frames, clip_len, interval, "loop")
    starts = window_starts(num_frames, _window(clip_len, interval, test_mode=True), stride)
    offsets = np.arange(clip_len, dtype=np.int64) * interval
    return _bound(starts[:, None] + offsets[None, :], num_frames, "loop")


def _window(clip_len: int, interval: int, test_mode: bool) -> int:
    """Frames one clip spans, as mmaction2's `SampleFrames` counts them.

    Training windows count `clip_len * interval`; test windows (`test_mode=True`, centre and
    multi-clip) the frames actually covered, `(clip_len - 1) * interval + 1`, so the centre
    clip and the evaluation clips of `training/graph_frame_indices.py` start on the same
    frame.
    """
    return (clip_len - 1) * interval + 1 if test_mode else clip_len * interval


def _check(num_frames: int, clip_len: int, interval: int, out_of_bound: str) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; got {num_frames}.")
    if clip_len < 1 or interval < 1:
        raise ValueError(f"clip_len and interval must be >= 1; got {clip_len}, {interval}.")
    if out_of_bound not in OUT_OF_BOUND_MODES:
        raise ValueError(f"out_of_bound must be one of {OUT_OF_BOUND_MODES}; got {out_of_bound!r}.")


def _bound(indices: np.ndarray, num_frames: int, out_of_bound: str) -> np.ndarray:
    if out_of_bound == "loop":
        return np.mod(indices, num_frames)
    # repeat_last: past the end, repeat the last in-range index of the same clip, or the
    # video's last frame when an explicit offset starts the clip past the end.
    in_range = np.where(indices < num_frames, indices, -1)
    last = np.max(in_range, axis=-1, keepdims=True)
    last = np.where(last < 0, num_frames - 1, last)
    return np.where(indices < num_frames, indices, last)
