"""In-graph frame indices (`training/graph_frame_indices.py`) against mmaction2's
`SampleFrames` formulas, worked out by hand here."""

import numpy as np
import tensorflow as tf

from keras_squeezetime.training.graph_frame_indices import eval_indices, train_indices


def _dense(offset: int, clip_len: int, interval: int, num_frames: int) -> list[int]:
    return [(offset + t * interval) % num_frames for t in range(clip_len)]


def test_train_offsets_cover_exactly_the_valid_starts():
    # 40 frames, 8 every 4th: the window is 32 frames, so starts 0..8 (40 - 32) are valid.
    num_frames, clip_len, interval = 40, 8, 4
    valid = {start: _dense(start, clip_len, interval, num_frames) for start in range(9)}
    seen = set()
    for i in range(300):
        indices = train_indices(num_frames, clip_len, interval, tf.constant([i, 17])).numpy()
        start = int(indices[0])
        assert start in valid, indices
        np.testing.assert_array_equal(indices, valid[start])
        seen.add(start)
    assert seen == set(valid)


def test_train_seed_replays_and_varies():
    first = train_indices(100, 8, 4, tf.constant([1, 2])).numpy()
    again = train_indices(100, 8, 4, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(first, again)
    starts = {int(train_indices(100, 8, 4, tf.constant([i, 2]))[0]) for i in range(20)}
    assert len(starts) > 5


def test_train_short_video_starts_at_zero_and_loops():
    # 10 frames cannot hold 8 x 4: mmaction starts at 0 and wraps the indices.
    for i in range(10):
        indices = train_indices(10, 8, 4, tf.constant([i, 0])).numpy()
        np.testing.assert_array_equal(indices, [0, 4, 8, 2, 6, 0, 4, 8])


def test_val_clip_is_the_centre():
    # Window (16 - 1) * 4 + 1 = 61 of 100 frames: max offset 39, centre start 39 // 2 = 19.
    indices = eval_indices(100, 16, 4).numpy()
    np.testing.assert_array_equal(indices, [list(range(19, 80, 4))])


def test_test_clips_are_evenly_spaced():
    # Starts round(i * 39 / 9) for i = 0..9.
    indices = eval_indices(100, 16, 4, num_clips=10).numpy()
    starts = [0, 4, 9, 13, 17, 22, 26, 30, 35, 39]
    np.testing.assert_array_equal(indices, [_dense(s, 16, 4, 100) for s in starts])


def test_test_clip_starts_round_half_to_even():
    # max offset 5 over 2 gaps: 2.5 rounds to 2, as numpy's round does.
    indices = eval_indices(7, 2, 1, num_clips=3).numpy()
    np.testing.assert_array_equal(indices, [[0, 1], [2, 3], [5, 6]])


def test_eval_short_video_loops_from_zero():
    np.testing.assert_array_equal(eval_indices(5, 4, 2).numpy(), [[0, 2, 4, 1]])
    np.testing.assert_array_equal(eval_indices(5, 4, 2, num_clips=2).numpy(), [[0, 2, 4, 1]] * 2)


def test_sampling_traces_with_unknown_length():
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def sample(num_frames):
        return train_indices(num_frames, 4, 2, tf.constant([3, 4])), eval_indices(
            num_frames, 4, 2, num_clips=2
        )

    train, test = sample(tf.constant(9))
    assert train.shape == (4,)
    np.testing.assert_array_equal(test.numpy(), [[0, 2, 4, 6], [2, 4, 6, 8]])


def test_eval_clips_start_where_the_video_side_samples_them():
    """squeezetime-evaluate (TFRecords) and squeezetime-predict (videos) test the same frames."""
    from keras_squeezetime.video.frame_indices import dense_indices, multi_clip_indices

    for num_frames in (1, 20, 60, 61, 62, 64, 65, 100, 239, 300, 301):
        for clip_len, interval in ((16, 4), (8, 2), (8, 1)):
            centre = dense_indices(num_frames, clip_len, interval, mode="center")
            np.testing.assert_array_equal(
                eval_indices(num_frames, clip_len, interval).numpy()[0], centre)
            for clips in (2, 3, 10):
                np.testing.assert_array_equal(
                    eval_indices(num_frames, clip_len, interval, clips).numpy(),
                    multi_clip_indices(num_frames, clip_len, interval, clips))


def test_sampling_takes_the_int64_frame_count_of_a_record():
    # tf.train.Example stores integers as int64: 40 frames, 8 every 4, starts 0..8.
    num_frames = tf.constant(40, tf.int64)
    indices = train_indices(num_frames, 8, 4, tf.constant([5, 6])).numpy()
    assert indices.dtype == np.int32
    assert 0 <= indices[0] <= 8
    np.testing.assert_array_equal(indices, _dense(int(indices[0]), 8, 4, 40))
    # Test window (8 - 1) * 4 + 1 = 29: max offset 11, centre 5; three clips 0, 6 (5.5), 11.
    np.testing.assert_array_equal(eval_indices(num_frames, 8, 4).numpy(), [_dense(5, 8, 4, 40)])
    np.testing.assert_array_equal(
        eval_indices(num_frames, 8, 4, num_clips=3).numpy(),
        [_dense(s, 8, 4, 40) for s in (0, 6, 11)])


def test_eval_needs_at_least_one_clip():
    import pytest

    with pytest.raises(ValueError, match="num_clips"):
        eval_indices(100, 8, 4, num_clips=0)
