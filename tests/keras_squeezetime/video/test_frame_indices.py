"""Frame-index sampling against mmaction2's definitions, written out independently."""

from __future__ import annotations

import numpy as np
import pytest

from keras_squeezetime.video import dense_indices, multi_clip_indices, uniform_indices


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
    "call",
    [
        lambda: dense_indices(0),
        lambda: dense_indices(10, clip_len=0),
        lambda: dense_indices(10, mode="middle"),
        lambda: dense_indices(10, out_of_bound="clamp"),
        lambda: multi_clip_indices(10, num_clips=0),
        lambda: uniform_indices(0),
        lambda: uniform_indices(10, mode="center"),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
