"""`predict_video` on real encoded videos, against independent references."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_squeezetime import decode_predictions
from keras_squeezetime.apps.prediction import predict_video
from keras_squeezetime.apps.predictor import load_predictor
from keras_squeezetime.video.decode import VideoDecodeError
from tests.helpers.videos import decode_native

NAMES = [f"action {i}" for i in range(10)]


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


def test_predict_video_matches_the_model_on_independently_sampled_clips(official, textured_video):
    result = predict_video(textured_video, official, top=3)
    # mmaction test clip: spans (16 - 1) * 2 + 1 = 31 frames, offset (40 - 31) // 2 = 4,
    # then every 2nd frame.
    indices = 4 + 2 * np.arange(16)
    np.testing.assert_array_equal(result.frame_indices, indices[None])
    frames = decode_native(textured_video)
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


def test_a_header_that_over_counts_predicts_from_the_frames_that_exist(
        make_overcounted_video, tmp_path):
    # Frame i is PALETTE[i % 12]; the header claims 40 frames, 20 decode.
    video = make_overcounted_video(num_frames=40, keep=20, height=32, width=32)
    folder = tmp_path / "run"
    folder.mkdir()
    _mean_colour_model(4, 32).save(folder / "model.keras")
    result = predict_video(video, folder, top=1, frame_interval=3, short_side=32)
    # The centre window of the 20 frames that decode: (20 - 10) // 2 = 5.
    np.testing.assert_array_equal(result.frame_indices, [[5, 8, 11, 14]])


def _mean_colour_model(frames: int, size: int) -> keras.Model:
    inputs = keras.Input((frames, size, size, 3), name="video")
    pooled = keras.layers.GlobalAveragePooling3D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))


def test_unreadable_videos_raise_decode_errors(official, make_broken_file, tmp_path):
    with pytest.raises(VideoDecodeError, match="missing.mp4.*no such file"):
        predict_video(tmp_path / "missing.mp4", official)
    with pytest.raises(VideoDecodeError, match="text.mp4"):
        predict_video(make_broken_file("text"), official)


def test_predict_video_ranks_as_decode_predictions_and_takes_any_name_sequence(
        official, textured_video):
    """One ranking (`labels.top_classes`) for both; names as a NumPy array were refused
    ("expected str, bytes or os.PathLike object, not ndarray")."""
    result = predict_video(textured_video, official, top=4, labels=np.array(NAMES))
    decoded = decode_predictions(result.probabilities[None], top=4, labels=np.array(NAMES))[0]
    assert [tuple(p) for p in result.top] == decoded
    assert result.top[0]._fields == ("index", "label", "probability")
