"""Clips for a model: resize and centre crop against an independent computation, and clips
from the frames that decode when the header over-counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from keras_squeezetime.model_config import ClipSettings
from keras_squeezetime.video.clips import center_crop, load_clips, sample_crops, video_clips
from keras_squeezetime.video.decode import FrameCountError, probe_video, read_frames
from keras_squeezetime.video.frame_indices import multi_clip_indices
from tests.helpers.videos import decode_native


def _bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resampling with pixel centres aligned (`align_corners=False`), edges clamped."""

    def taps(out_size: int, in_size: int):
        source = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, in_size - 1), source - low

    r0, r1, fr = taps(height, image.shape[0])
    c0, c1, fc = taps(width, image.shape[1])
    image = image.astype(np.float64)
    rows = image[r0] * (1 - fr)[:, None, None] + image[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def _nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum(((np.arange(height) + 0.5) * image.shape[0] / height).astype(int),
                      image.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * image.shape[1] / width).astype(int),
                      image.shape[1] - 1)
    return image[rows][:, cols].astype(np.float64)


def test_center_crop_takes_the_middle():
    frames = np.arange(2 * 5 * 8 * 3).reshape(2, 5, 8, 3)
    np.testing.assert_array_equal(center_crop(frames, 4), frames[:, 0:4, 2:6])
    with pytest.raises(ValueError, match="Cannot crop 6x6 from 5x8"):
        center_crop(frames, 6)


@pytest.mark.parametrize("short_side,size", [(80, 64), (40, 32)])
def test_resize_and_crop_match_an_independent_bilinear_resize(make_video, short_side, size):
    # Grey, smooth, moving waves: no chroma detail (4:2:0 would blur it) and slopes of ~9
    # levels per output pixel, so nearest-neighbour or a crop off by a pixel stands out.
    y, x = np.mgrid[0:32, 0:48].astype(np.float64)
    grey = np.stack([128 + 60 * np.sin(2 * np.pi * (x / 17 + t / 10))
                     + 50 * np.cos(2 * np.pi * (y / 13 - t / 12)) for t in range(12)])
    frames = np.repeat(grey.clip(0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    video = make_video("waves.avi", frames=frames, fps=10)  # MJPEG: full-range, near lossless
    settings = ClipSettings(frames=4, frame_interval=2, image_size=size, short_side=short_side)
    indices = np.array([[1, 3, 5, 7]])
    clip = load_clips(video, indices, settings)[0]

    native = decode_native(video)[indices[0]]
    height, width = short_side, int(48 * short_side / 32 + 0.5)  # 32x48 -> short side
    top, left = (height - size) // 2, (width - size) // 2
    resized = np.stack([_bilinear(frame, height, width) for frame in native])
    expected = resized[:, top:top + size, left:left + size]
    error = np.abs(clip - expected)
    # Two bilinear resamplers (swscale in YUV, this one in RGB): within 2 levels.
    assert error.max() <= 2.5 and error.mean() <= 1.0, (error.max(), error.mean())
    # What the check tells apart: nearest-neighbour resizing, and a crop one pixel off.
    nearest = np.stack([_nearest(frame, height, width) for frame in native])
    assert np.abs(clip - nearest[:, top:top + size, left:left + size]).mean() > 4
    assert np.abs(clip - resized[:, top:top + size, left + 1:left + 1 + size]).mean() > 4
    assert np.abs(clip - resized[:, top + 1:top + 1 + size, left:left + size]).mean() > 4


def test_clips_come_from_the_frames_that_decode(make_overcounted_video, frame_ids):
    video = make_overcounted_video(num_frames=40, keep=20, height=32, width=32)
    with pytest.warns(UserWarning, match="its header counts 40 frames but the file holds 20"):
        assert probe_video(video).num_frames == 20  # packets counted, not the header
    with pytest.raises(FrameCountError, match="frame index 39 requested but the video decodes "
                                              "to 20 frames") as error:
        read_frames(video, [0, 39])
    assert error.value.decoded == 20
    settings = ClipSettings(frames=4, frame_interval=3, image_size=32, short_side=32)
    # The centre clip too is the centre of the frames that exist (no index past them).
    with pytest.warns(UserWarning, match="header counts 40"):
        _, centre = video_clips(video, settings, num_clips=1)
    np.testing.assert_array_equal(centre, multi_clip_indices(20, 4, 3, 1))
    with pytest.warns(UserWarning, match="header counts 40"):
        clips, indices = video_clips(video, settings, num_clips=2)
    # Sampled from 20 frames: windows of (4 - 1) * 3 + 1 = 10 frames at 0 and 10.
    np.testing.assert_array_equal(indices, multi_clip_indices(20, 4, 3, 2))
    np.testing.assert_array_equal(indices, [[0, 3, 6, 9], [10, 13, 16, 19]])
    assert [frame_ids(clip) for clip in clips.astype(np.uint8)] == [
        [i % 12 for i in row] for row in indices.tolist()]


def test_sample_crops_shares_each_distinct_frame(make_video):
    video = make_video("shared.mp4", num_frames=30, height=32, width=48)
    settings = ClipSettings(frames=3, frame_interval=2, image_size=32, short_side=32)
    sampled = sample_crops(video, settings, lambda n: np.array([[0, 2, 4], [2, 4, 6]]))
    assert sampled.num_frames == 30 and len(sampled.crops) == 4  # frames 0, 2, 4, 6
    np.testing.assert_array_equal(sampled.clips(1, 2)[0], sampled.crops[[1, 2, 3]])


def test_a_video_shorter_than_a_clip_wraps_around_with_a_warning(make_video):
    settings = ClipSettings(frames=4, frame_interval=4, image_size=32, short_side=32)  # spans 13
    short = make_video("short.mp4", num_frames=8, height=32, width=48)
    with pytest.warns(UserWarning, match=r"short\.mp4: 8 frames, fewer than the 13 a clip spans"):
        _, indices = video_clips(short, settings)
    np.testing.assert_array_equal(indices, [[0, 4, 0, 4]])  # 8 and 12 wrap to 0 and 4
    exact = make_video("exact.mp4", num_frames=13, height=32, width=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        video_clips(exact, settings)
