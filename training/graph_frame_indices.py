"""Frame indices of dense clips computed in the TensorFlow graph (for tf.data pipelines),
with mmaction2's `SampleFrames` semantics.

The NumPy twin for decoded videos is `keras_squeezetime.video.frame_indices`; both pick the
same evaluation frames (tested).

A clip is `clip_len` frames taken every `frame_interval` stored frames from a start offset.
The offsets follow mmaction2's `SampleFrames` with `out_of_bound_opt="loop"`
(`mmaction/datasets/transforms/loading.py`, read at commit 4d6c934), which produced the
official SqueezeTime numbers:

- train: the window spans `clip_len * frame_interval` frames; the offset is uniform in
  `[0, num_frames - clip_len * frame_interval]`, and 0 when the video is shorter.
- eval (`test_mode`): the window spans `(clip_len - 1) * frame_interval + 1` frames and
  `max_offset = max(num_frames - window, 0)`; one clip starts at `max_offset // 2` (the centre),
  `n > 1` clips start at `round(i * max_offset / (n - 1))` (round half to even, as numpy).
- indices past the end wrap around (`index % num_frames`): a short video loops.

`frame_interval` counts *stored* frames: records written at a reduced frame rate need a
proportionally smaller interval to span the same time.
"""

from __future__ import annotations

import tensorflow as tf


def train_indices(
    num_frames: tf.Tensor | int, clip_len: int, frame_interval: int, seed: tf.Tensor
) -> tf.Tensor:
    """Frame indices `[clip_len]` (int32) of one training clip at a random offset.

    Args:
      num_frames: frames stored for the video (scalar, > 0).
      clip_len: frames in the clip (T).
      frame_interval: step between sampled frames, in stored frames.
      seed: shape `[2]` int seed for the stateless offset draw.
    """
    num_frames = tf.cast(num_frames, tf.int32)
    # mmaction's `avg_interval` for one clip: how many start offsets fit the whole window.
    num_offsets = num_frames - clip_len * frame_interval + 1
    offset = tf.random.stateless_uniform(
        [], seed, minval=0, maxval=tf.maximum(num_offsets, 1), dtype=tf.int32
    )
    return _clip_indices(offset[None], num_frames, clip_len, frame_interval)[0]


def eval_indices(
    num_frames: tf.Tensor | int, clip_len: int, frame_interval: int, num_clips: int = 1
) -> tf.Tensor:
    """Frame indices `[num_clips, clip_len]` (int32) of evenly spaced test clips.

    `num_clips=1` is the validation clip, centred in the video.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}.")
    num_frames = tf.cast(num_frames, tf.int32)
    max_offset = tf.maximum(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
    if num_clips == 1:
        offsets = (max_offset // 2)[None]
    else:
        spacing = tf.cast(max_offset, tf.float64) / (num_clips - 1)
        steps = tf.range(num_clips, dtype=tf.float64)
        offsets = tf.cast(tf.round(steps * spacing), tf.int32)  # tf.round: half to even
    return _clip_indices(offsets, num_frames, clip_len, frame_interval)


def _clip_indices(
    offsets: tf.Tensor, num_frames: tf.Tensor, clip_len: int, frame_interval: int
) -> tf.Tensor:
    """`[len(offsets), clip_len]` indices from each offset, looped past the end."""
    steps = tf.range(clip_len, dtype=tf.int32) * frame_interval
    return tf.math.floormod(offsets[:, None] + steps[None, :], num_frames)
