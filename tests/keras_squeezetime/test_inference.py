"""`predict_video` and `predict_long_video` on real encoded videos, against independent references."""

from __future__ import annotations

import csv
import json

import av
import keras
import numpy as np
import pytest
from PIL import Image

from keras_squeezetime.inference import (
    center_crop,
    merge_segments,
    predict_long_video,
    predict_video,
    window_starts,
)
from keras_squeezetime.predictor import load_predictor
from keras_squeezetime.video.decode import VideoDecodeError

NAMES = [f"action {i}" for i in range(10)]


def _decode_all(path) -> np.ndarray:
    """Every frame, decoded straight with PyAV (not through the package's decoder)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def official(parity):
    """The official 10-class fixture, 16 frames every 2nd, no resize (64 px short side)."""
    return load_predictor(parity["pth"], labels=NAMES, image_size=64, frame_interval=2,
                          short_side=64)


@pytest.fixture
def textured_video(make_video):
    """40 frames of 64x96 smooth moving gradients (survive H.264 well, differ per frame)."""
    y, x = np.mgrid[0:64, 0:96]
    frames = np.stack([
        np.stack([(x * 2 + 5 * t) % 256, (y * 3 + 7 * t) % 256, (x + y + 11 * t) % 256], -1)
        for t in range(40)
    ]).astype(np.uint8)
    return make_video("textured.mp4", frames=frames, fps=10)


def test_center_crop_takes_the_middle():
    frames = np.arange(2 * 5 * 8 * 3).reshape(2, 5, 8, 3)
    crop = center_crop(frames, 4)
    np.testing.assert_array_equal(crop, frames[:, 0:4, 2:6])
    with pytest.raises(ValueError, match="Cannot crop 6x6 from 5x8"):
        center_crop(frames, 6)


def test_window_starts_cover_the_video():
    np.testing.assert_array_equal(window_starts(40, 15, 5), [0, 5, 10, 15, 20, 25])
    # The last regular window ends at 35: one more ends at the last frame.
    np.testing.assert_array_equal(window_starts(40, 15, 10), [0, 10, 20, 25])
    np.testing.assert_array_equal(window_starts(10, 15, 5), [0])


def test_merge_segments_merges_runs_and_applies_thresholds():
    a, b = [0.9, 0.1], [0.2, 0.8]
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], b, [0.55, 0.45]])
    starts = np.arange(0, 60, 10)
    ends = starts + 20
    # Centres 10..60: boundaries halfway between centres, first start and last end.
    merged = merge_segments(probabilities, starts, ends, fps=10, class_names=["walk", "run"])
    assert [(s.label, s.start_frame, s.end_frame, s.first_window, s.last_window)
            for s in merged] == [("walk", 0, 25, 0, 1), ("run", 25, 55, 2, 4), ("walk", 55, 70, 5, 5)]
    assert merged[1].start_time == 2.5 and merged[1].end_time == 5.5
    assert merged[0].score == pytest.approx(0.85) and merged[1].score == pytest.approx(0.7)
    # An uncertain window (0.6 < 0.65) splits the run; the last window (0.55) is dropped.
    split = merge_segments(probabilities, starts, ends, 10, min_score=0.65)
    assert [(s.label, s.start_frame, s.end_frame) for s in split] == [
        ("class 0", 0, 25), ("class 1", 25, 35), ("class 1", 45, 55)]
    assert [s.first_window for s in merge_segments(probabilities, starts, ends, 10,
                                                   min_windows=2)] == [0, 2]
    assert merge_segments(np.array([a]), [0], [5], 10)[0].end_time == 0.5


def test_predict_video_matches_the_model_on_independently_sampled_clips(official, textured_video):
    result = predict_video(textured_video, official, top=3)
    # mmaction test clip: spans (16 - 1) * 2 + 1 = 31 frames, offset (40 - 31) // 2 = 4,
    # then every 2nd frame.
    indices = 4 + 2 * np.arange(16)
    np.testing.assert_array_equal(result.frame_indices, indices[None])
    frames = _decode_all(textured_video)
    clip = frames[indices][:, :, 16:80].astype("float32")  # 64x96 -> centre 64x64
    expected = official.keras_model.predict(clip[None], verbose=0)[0]
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    order = np.argsort(-expected)[:3]
    assert [p.index for p in result.top] == order.tolist()
    assert [p.label for p in result.top] == [NAMES[i] for i in order]
    assert result.top[0].probability == pytest.approx(float(expected[order[0]]), abs=1e-5)

    # Three clips: offsets 0, 4, 9 (round(k * 9 / 2), half to even, up to 40 - 31),
    # probabilities averaged.
    multi = predict_video(textured_video, official, num_clips=3)
    clips = np.stack([frames[o + 2 * np.arange(16)][:, :, 16:80] for o in (0, 4, 9)])
    expected = official.keras_model.predict(clips.astype("float32"), verbose=0).mean(axis=0)
    np.testing.assert_allclose(multi.probabilities, expected, atol=1e-5)


def test_predict_video_resizes_the_short_side_like_pil(parity, textured_video):
    predictor = load_predictor(parity["pth"], labels=NAMES, image_size=64, frame_interval=2,
                               short_side=80)
    result = predict_video(textured_video, predictor)
    frames = _decode_all(textured_video)[4 + 2 * np.arange(16)]
    # 64x96 -> 80x120, then the centre 64x64: rows 8..72, columns 28..92.
    resized = np.stack([np.asarray(Image.fromarray(f).resize((120, 80), Image.BILINEAR))
                        for f in frames])
    clip = resized[:, 8:72, 28:92].astype("float32")
    expected = predictor.keras_model.predict(clip[None], verbose=0)[0]
    # Two bilinear resamplers (swscale, PIL): close, not identical.
    np.testing.assert_allclose(result.probabilities, expected, atol=0.03)
    assert result.top[0].index == int(np.argmax(expected))


def test_head_bias_decides_a_saved_model(tmp_path, textured_video):
    model = keras.Sequential([
        keras.Input((4, 32, 32, 3), name="video"),
        keras.layers.GlobalAveragePooling3D(),
        keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant([0.0, 3.0, 1.0])),
    ])
    folder = tmp_path / "run"
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": 4, "frame_interval": 3, "image_size": 32, "short_side": 40, "num_classes": 3,
        "class_names": ["swim", "dance", "climb"]}))
    result = predict_video(textured_video, folder, top=2)
    expected = _softmax([0.0, 3.0, 1.0])
    assert [(p.index, p.label) for p in result.top] == [(1, "dance"), (2, "climb")]
    assert result.top[0].probability == pytest.approx(expected[1], abs=1e-6)
    # mmaction test clip from config.json's interval: (40 - ((4 - 1) * 3 + 1)) // 2 = 15.
    np.testing.assert_array_equal(result.frame_indices[0], [15, 18, 21, 24])


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
    clips = _decode_all(video)[starts[:, None] + 2 * np.arange(4)].astype("float32")
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
    timeline = predict_long_video(video, _brightness_model(4, 32), frame_interval=2,
                                  short_side=32)
    assert timeline.starts.tolist() == [0] and timeline.ends.tolist() == [5]
    assert len(timeline.segments) == 1 and timeline.segments[0].end_time == pytest.approx(5 / 25)


def test_unreadable_videos_raise_decode_errors(official, make_broken_file, tmp_path):
    with pytest.raises(VideoDecodeError, match="missing.mp4.*no such file"):
        predict_video(tmp_path / "missing.mp4", official)
    with pytest.raises(VideoDecodeError, match="text.mp4"):
        predict_long_video(make_broken_file("text"), official)
