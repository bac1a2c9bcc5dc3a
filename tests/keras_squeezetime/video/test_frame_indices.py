"""Frame-index sampling against mmaction2's definitions, written out independently."""

from __future__ import annotations

import re

import numpy as np
import pytest

from keras_squeezetime.video import dense_indices, multi_clip_indices, uniform_indices
from keras_squeezetime.video.frame_indices import sliding_window_indices, window_starts


def test_dense_random_covers_every_window_and_stays_in_range():
    rng = np.random.default_rng(0)
    # 300 frames, 16 x 4: mmaction's window is 64 frames, so starts 0..236.
    starts = set()
    for _ in range(3000):
        indices = dense_indices(300, 16, 4, rng=rng)
        assert indices.shape == (16,) and indices.dtype == np.int64
        assert np.all(np.diff(indices) == 4)
        starts.add(int(indices[0]))
    assert min(starts) == 0 and max(starts) == 236
    assert len(starts) > 200  # a different window nearly every draw, not a few fixed ones


def test_dense_random_is_reproducible_with_a_seed():
    first = dense_indices(300, rng=np.random.default_rng(7))
    second = dense_indices(300, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)


def test_dense_center_and_explicit_offset():
    # mmaction2 test mode: the window is (16 - 1) * 4 + 1 = 61 frames, offsets 0..239,
    # centre 239 // 2 = 119.
    np.testing.assert_array_equal(dense_indices(300, 16, 4, mode="center"), 119 + 4 * np.arange(16))
    np.testing.assert_array_equal(dense_indices(100, 8, 2, offset=10), 10 + 2 * np.arange(8))


def test_short_video_loops_or_repeats_last():
    # 10 frames < 64: the window starts at 0 and wraps (mmaction's default "loop").
    np.testing.assert_array_equal(
        dense_indices(10, 16, 4, mode="random", rng=np.random.default_rng(1)),
        [(4 * k) % 10 for k in range(16)],
    )
    np.testing.assert_array_equal(
        dense_indices(10, 16, 4, mode="center", out_of_bound="repeat_last"),
        [0, 4, 8] + [8] * 13,
    )


def test_single_frame_video():
    np.testing.assert_array_equal(dense_indices(1, 16, 4), np.zeros(16))


def test_multi_clip_evenly_spaced_from_first_to_last_window():
    clips = multi_clip_indices(300, 16, 4, num_clips=5)

    assert clips.shape == (5, 16)
    # Test window 61 frames: offsets round(k * 239 / 4) = 0, 60 (59.75), 120 (119.5, to
    # even), 179 (179.25), 239; the last clip ends on the last frame.
    np.testing.assert_array_equal(clips[:, 0], [0, 60, 120, 179, 239])
    assert clips.max() == 239 + 60 == 299
    one = multi_clip_indices(300, 16, 4, num_clips=1)
    np.testing.assert_array_equal(one, [119 + 4 * np.arange(16)])


def test_multi_clip_short_video_wraps():
    clips = multi_clip_indices(20, 16, 4, num_clips=3)

    np.testing.assert_array_equal(clips, np.tile((4 * np.arange(16)) % 20, (3, 1)))


def test_uniform_random_takes_one_frame_per_segment():
    rng = np.random.default_rng(3)
    for num_frames in (8, 50, 301):
        seg = (num_frames - 1) / 8
        for _ in range(200):
            indices = uniform_indices(num_frames, 8, rng=rng)
            assert indices.shape == (8,)
            for i, index in enumerate(indices):
                assert round(seg * i) <= index <= round(seg * (i + 1))
            assert indices.max() < num_frames


def test_uniform_test_mode_matches_mmaction_formula():
    # mmaction2 UniformSample(test_mode=True): start_i + int(duration * (k + 1)),
    # seg_size = (n - 1) / clip_len, duration = seg_size / (num_clips + 1).
    num_frames, segments, clips = 100, 8, 2
    seg_size = 99 / 8
    expected = [
        [int(np.round(seg_size * i)) + int(seg_size / 3 * (k + 1)) for i in range(segments)]
        for k in range(clips)
    ]

    np.testing.assert_array_equal(
        uniform_indices(num_frames, segments, mode="test", num_clips=clips), expected
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dense_indices(0), "num_frames must be >= 1; got 0"),
        (lambda: dense_indices(10, clip_len=0), "clip_len and interval must be >= 1; got 0, 4"),
        (lambda: dense_indices(10, mode="middle"), "mode must be 'random' or 'center'"),
        (lambda: dense_indices(10, out_of_bound="clamp"), "out_of_bound must be one of"),
        (lambda: multi_clip_indices(10, num_clips=0), "num_clips must be >= 1; got 0"),
        (lambda: uniform_indices(0), "num_frames must be >= 1; got 0"),
        (lambda: uniform_indices(10, mode="center"), "mode must be 'random' or 'test'"),
    ],
)
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_defaults_are_the_papers_16_frames_every_4():
    # Test window (16 - 1) * 4 + 1 = 61 of 300 frames: offsets 0..239, centre 119.
    np.testing.assert_array_equal(dense_indices(300, mode="center"), 119 + 4 * np.arange(16))
    # Ten clips by default, starts round(k * 239 / 9): 239 / 9 = 26.56 per step.
    clips = multi_clip_indices(300)
    np.testing.assert_array_equal(clips[:, 0], [0, 27, 53, 80, 106, 133, 159, 186, 212, 239])
    np.testing.assert_array_equal(clips - clips[:, :1], np.tile(4 * np.arange(16), (10, 1)))
    # Uniform: 16 segments of 99 / 16 = 6.1875 frames; one test clip, 3 (int(6.1875 / 2))
    # frames into each segment.
    expected = [round(6.1875 * i) + 3 for i in range(16)]
    np.testing.assert_array_equal(uniform_indices(100, mode="test"), [expected])
    drawn = uniform_indices(100)  # random mode without a generator
    assert drawn.shape == (16,)
    assert all(round(6.1875 * i) <= f <= round(6.1875 * (i + 1)) for i, f in enumerate(drawn))


def test_smallest_valid_arguments_are_accepted():
    np.testing.assert_array_equal(dense_indices(10, clip_len=1, interval=1, offset=0), [0])
    # interval 1: test window 4 of 10 frames, offsets 0..6, centre 3.
    np.testing.assert_array_equal(dense_indices(10, 4, 1, mode="center"), [3, 4, 5, 6])
    np.testing.assert_array_equal(dense_indices(10, 4, 2, offset=0), [0, 2, 4, 6])
    np.testing.assert_array_equal(uniform_indices(1, 4, mode="test"), [[0, 0, 0, 0]])
    # One segment of 9 frames: test clip starts int(9 / 2) = 4 frames in.
    np.testing.assert_array_equal(uniform_indices(10, 1, mode="test"), [[4]])


def test_random_start_is_zero_whenever_the_window_does_not_fit():
    # 10 frames, 8 x 4 = 32: no window fits, every draw starts at 0 (mmaction).
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert dense_indices(10, 8, 4, rng=rng)[0] == 0
    # 32 frames hold the training window exactly once: still only offset 0.
    for _ in range(50):
        assert dense_indices(32, 8, 4, rng=rng)[0] == 0


def test_repeat_last_repeats_the_last_frame_inside_the_video():
    # 10 frames, 4 every 5 from 0: 0, 5, then 10 and 15 are past the end (10 is exactly it).
    np.testing.assert_array_equal(
        dense_indices(10, 4, 5, offset=0, out_of_bound="repeat_last"), [0, 5, 5, 5])
    np.testing.assert_array_equal(
        dense_indices(1, 4, 4, mode="center", out_of_bound="repeat_last"), [0, 0, 0, 0])
    # An explicit start past the end repeats the video's last frame.
    np.testing.assert_array_equal(
        dense_indices(10, 3, 2, offset=12, out_of_bound="repeat_last"), [9, 9, 9])
    # Several clips: each repeats its own last frame (20 frames, 16 x 4 from 0: 0..16).
    clips = multi_clip_indices(20, 16, 4, num_clips=3, out_of_bound="repeat_last")
    np.testing.assert_array_equal(clips, [[0, 4, 8, 12, 16] + [16] * 11] * 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dense_indices(0), "num_frames"),
        (lambda: multi_clip_indices(0), "num_frames"),
        (lambda: dense_indices(10, interval=0), "interval"),
        (lambda: dense_indices(10, offset=-1), "offset"),
        (lambda: uniform_indices(0), "num_frames"),
        (lambda: uniform_indices(10, 0), "num_segments"),
    ],
)
def test_bad_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_repeat_last_when_only_the_first_frame_is_inside():
    # 5 frames, 3 every 8 from 0: 8 and 16 are past the end, frame 0 is the last inside.
    np.testing.assert_array_equal(
        dense_indices(5, 3, 8, offset=0, out_of_bound="repeat_last"), [0, 0, 0])


def test_window_starts_cover_the_video():
    np.testing.assert_array_equal(window_starts(40, 15, 5), [0, 5, 10, 15, 20, 25])
    # The last regular window ends at 35: one more ends at the last frame.
    np.testing.assert_array_equal(window_starts(40, 15, 10), [0, 10, 20, 25])
    np.testing.assert_array_equal(window_starts(10, 15, 5), [0])


def test_sliding_windows_span_their_clips_and_wrap_a_short_video():
    # 4 frames every 3 span 10 frames: windows at 0, 6 and the last one ending at frame 19.
    np.testing.assert_array_equal(sliding_window_indices(20, 4, 3, 6),
                                  [[0, 3, 6, 9], [6, 9, 12, 15], [10, 13, 16, 19]])
    np.testing.assert_array_equal(sliding_window_indices(7, 4, 3, 6), [[0, 3, 6, 2]])
