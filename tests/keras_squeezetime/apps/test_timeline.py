"""`predict_long_video` and the timeline it returns, on real encoded videos."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_squeezetime.apps.timeline import merge_segments, predict_long_video
from keras_squeezetime.video.decode import VideoDecodeError
from tests.helpers.videos import decode_native


def test_merge_segments_merges_runs_and_applies_thresholds():
    a, b = [0.9, 0.1], [0.2, 0.8]
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], b, [0.55, 0.45]])
    starts = np.arange(0, 60, 10)
    ends = starts + 20
    # Centres 10..60: boundaries halfway between centres, first start and last end.
    merged = merge_segments(probabilities, starts, ends, fps=10, class_names=["walk", "run"])
    assert [(s.label, s.start_frame, s.end_frame, s.first_window, s.last_window)
            for s in merged] == [("walk", 0, 25, 0, 1), ("run", 25, 55, 2, 4),
                                 ("walk", 55, 70, 5, 5)]
    assert merged[1].start_time == 2.5 and merged[1].end_time == 5.5
    assert merged[0].score == pytest.approx(0.85) and merged[1].score == pytest.approx(0.7)
    # An uncertain window (0.6 < 0.65) splits the run; the last window (0.55) is dropped.
    split = merge_segments(probabilities, starts, ends, 10, min_score=0.65)
    assert [(s.label, s.start_frame, s.end_frame) for s in split] == [
        ("class 0", 0, 25), ("class 1", 25, 35), ("class 1", 45, 55)]
    assert [s.first_window for s in merge_segments(probabilities, starts, ends, 10,
                                                   min_windows=2)] == [0, 2]
    assert merge_segments(np.array([a]), [0], [5], 10)[0].end_time == 0.5


def _brightness_model(frames: int, size: int) -> keras.Model:
    """Class 1 ("bright") when the clip's mean pixel is above 128, else class 0 ("dark")."""
    inputs = keras.Input((frames, size, size, 3), name="video")
    pooled = keras.layers.GlobalAveragePooling3D()(inputs)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(pooled)
    dense.set_weights([np.tile([[-0.1 / 3, 0.1 / 3]], (3, 1)), np.array([12.8, -12.8])])
    return keras.Model(inputs, outputs)


def test_long_video_timeline_follows_the_content(make_video, tmp_path):
    frames = np.full((60, 32, 32, 3), 20, np.uint8)
    frames[30:] = 230  # dark for 3 s, bright for 3 s at 10 fps
    video = make_video("dark_then_bright.mp4", frames=frames, fps=10)
    model = _brightness_model(4, 32)
    timeline = predict_long_video(video, model, window_stride=4, labels=["dark", "bright"],
                                  frame_interval=2, short_side=32)
    # Windows span (4 - 1) * 2 + 1 = 7 frames every 4th; the last one ends at frame 60.
    starts = np.append(np.arange(0, 54, 4), 53)
    np.testing.assert_array_equal(timeline.starts, starts)
    np.testing.assert_array_equal(timeline.ends, starts + 7)
    clips = decode_native(video)[starts[:, None] + 2 * np.arange(4)].astype("float32")
    np.testing.assert_allclose(timeline.probabilities, model.predict(clips, verbose=0), atol=1e-5)
    bright = (clips.mean(axis=(1, 2, 3, 4)) > 128)
    np.testing.assert_array_equal(timeline.probabilities.argmax(1), bright.astype(int))
    # Window starting at 28 samples 28, 30, 32, 34: mostly bright; it opens the second segment.
    first_bright = int(np.argmax(bright))
    assert starts[first_bright] == 28
    boundary = round(((starts[first_bright - 1] + starts[first_bright]) / 2 + 3.5))
    assert [(s.label, s.start_frame, s.end_frame) for s in timeline.segments] == [
        ("dark", 0, boundary), ("bright", boundary, 60)]
    assert timeline.segments[1].end_time == pytest.approx(6.0)

    with open(timeline.to_csv(tmp_path / "t.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == ["dark", "bright"] and rows[1]["end_frame"] == "60"
    with open(timeline.to_csv(tmp_path / "w.csv", what="windows"), newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(starts)
    data = json.loads(open(timeline.to_json(tmp_path / "t.json", top=1)).read())
    assert len(data["windows"]) == len(starts) and data["window_stride"] == 4
    assert data["windows"][-1]["top"][0]["label"] == "bright"
    with Image.open(timeline.plot_png(tmp_path / "t.png")) as image:
        assert image.size == (1000, 450)


def test_short_video_gets_one_wrapped_window(make_video):
    video = make_video("short.mp4", num_frames=5, height=32, width=32)
    with pytest.warns(UserWarning, match="short.mp4: 5 frames, fewer than the 7 a clip spans"):
        timeline = predict_long_video(video, _brightness_model(4, 32), frame_interval=2,
                                      short_side=32)
    assert timeline.starts.tolist() == [0] and timeline.ends.tolist() == [5]
    assert len(timeline.segments) == 1 and timeline.segments[0].end_time == pytest.approx(5 / 25)


def test_windows_cover_the_frames_that_decode(make_overcounted_video, tmp_path):
    # The header claims 60 frames; 30 decode (dark 0-14, bright 15-29).
    frames = np.full((60, 32, 32, 3), 20, np.uint8)
    frames[15:] = 230
    video = make_overcounted_video(num_frames=60, keep=30, frames=frames, fps=10)
    with pytest.warns(UserWarning, match="header counts 60 frames but the file holds 30"):
        timeline = predict_long_video(video, _brightness_model(4, 32), window_stride=4,
                                      labels=["dark", "bright"], frame_interval=2,
                                      short_side=32)
    assert timeline.num_frames == 30
    # Windows of 7 frames every 4th up to 23, one more ending at frame 30.
    np.testing.assert_array_equal(timeline.starts, [0, 4, 8, 12, 16, 20, 23])
    assert timeline.ends[-1] == 30 and timeline.segments[-1].end_time == pytest.approx(3.0)
    assert [s.label for s in timeline.segments] == ["dark", "bright"]
    files = timeline.save(tmp_path / "out", top=1)
    assert sorted(files) == ["json", "png", "segments_csv", "windows_csv"]
    assert json.loads(open(files["json"]).read())["num_frames"] == 30


def test_unreadable_video_raises_a_decode_error(make_broken_file):
    with pytest.raises(VideoDecodeError, match="text.mp4"):
        predict_long_video(make_broken_file("text"), _brightness_model(4, 32))


def test_times_come_from_the_timestamps_of_a_variable_frame_rate(make_video, tmp_path):
    # 30 dark frames 0.1 s apart, then 30 bright ones 0.02 s apart: frame 45 is at 3.3 s,
    # not 45 / (average rate).
    times = np.concatenate([0.1 * np.arange(30), 3.0 + 0.02 * np.arange(30)])
    frames = np.full((60, 32, 32, 3), 20, np.uint8)
    frames[30:] = 230
    video = make_video("vfr.mkv", frames=frames, timestamps=times, fps=10)
    timeline = predict_long_video(video, _brightness_model(4, 32), window_stride=4,
                                  labels=["dark", "bright"], frame_interval=2, short_side=32)
    windows = timeline.to_dict()["windows"]
    np.testing.assert_allclose([w["start_time"] for w in windows], times[timeline.starts],
                               atol=2e-3)
    dark, bright = timeline.segments
    assert times[26] <= bright.start_time <= times[33] and bright.start_time > 2.5
    assert bright.end_time == pytest.approx(times[-1] + 1 / timeline.fps, abs=2e-3)
    with open(timeline.to_csv(tmp_path / "w.csv", what="windows"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[-1]["start_time"]) == pytest.approx(times[timeline.starts[-1]], abs=2e-3)


def test_memory_does_not_grow_with_the_length_of_the_video(make_video):
    import tracemalloc

    model = _brightness_model(4, 64)
    peaks = []
    for num_frames in (120, 720):
        # Wider than the crop: a crop is then a copy tracemalloc counts, not PyAV's buffer.
        video = make_video(f"long{num_frames}.mp4", num_frames=num_frames, height=64, width=96)
        tracemalloc.start()
        timeline = predict_long_video(video, model, window_stride=4, frame_interval=2,
                                      short_side=64)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert timeline.num_frames == num_frames
    # Holding every sampled frame (half of them) would need 6x as much for 6x the frames;
    # 360 crops of 64x64 alone are 4.4 MB.
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_windows_past_damaged_packets_slide_over_the_frames_that_decode(make_video):
    frames = np.full((40, 32, 32, 3), 20, np.uint8)
    frames[20:] = 230
    video = make_video("damaged.avi", frames=frames, codec="mjpeg", fps=10)
    data = bytearray(video.read_bytes())
    cut = len(data) * 3 // 4
    data[cut:cut + len(data) // 8] = bytes(len(data) // 8)  # frames near the end break
    video.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged packet"):
        timeline = predict_long_video(video, _brightness_model(4, 32), window_stride=4,
                                      labels=["dark", "bright"], frame_interval=2,
                                      short_side=32)
    assert 20 < timeline.num_frames < 40
    assert timeline.ends[-1] == timeline.num_frames  # the last window ends at the last frame
    assert [s.label for s in timeline.segments] == ["dark", "bright"]
