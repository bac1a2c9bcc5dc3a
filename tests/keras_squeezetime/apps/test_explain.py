"""Saliency and GradCAM++ of real clips through the official fixture model, PNG grid and GIF."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_squeezetime.apps.explain import explain_clip, explain_video, overlay
from keras_squeezetime.apps.predictor import load_predictor
from tests.helpers import calibrate_batch_norm, tiny_squeezetime, varied_clips

NAMES = [f"action {i}" for i in range(10)]
# tf-keras-vis imports zoom from a deprecated SciPy namespace.
pytestmark = pytest.mark.filterwarnings("ignore:Please import `zoom`:DeprecationWarning")


@pytest.fixture(scope="module")
def official(parity):
    return load_predictor(parity["pth"], labels=NAMES, image_size=64, frame_interval=2,
                          short_side=64)


@pytest.fixture(scope="module")
def explanation(official, tmp_path_factory):
    from keras_squeezetime.video.writer import write_video

    y, x = np.mgrid[0:64, 0:80]
    frames = np.stack([
        np.stack([(x * 3 + 9 * t) % 256, (y * 2 + 5 * t) % 256, (x * y // 8 + t) % 256], -1)
        for t in range(40)
    ]).astype(np.uint8)
    path = write_video(tmp_path_factory.mktemp("explain") / "moving.mp4", frames, fps=10)
    return explain_video(path, official)


def _logits_model(model: keras.Model) -> keras.Model:
    pooled = keras.ops.mean(model.get_layer("stage4_block3").output, axis=(1, 2))
    return keras.Model(model.input, model.get_layer("head").fc(pooled))


def test_maps_have_the_clip_shape_and_carry_information(official, explanation):
    assert explanation.frames.shape == (16, 64, 64, 3) and explanation.frames.dtype == np.uint8
    np.testing.assert_array_equal(explanation.frame_indices, 4 + 2 * np.arange(16))
    assert explanation.saliency.shape == (16, 64, 64) and explanation.gradcam.shape == (64, 64)
    for heat in (explanation.saliency, explanation.gradcam):
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
        assert heat.std() > 0.01
    # Per-frame saliency: the frames' maps differ.
    assert np.abs(explanation.saliency[0] - explanation.saliency[-1]).mean() > 0.005
    probabilities = official.predict_clips(explanation.frames[None].astype("float32"))[0]
    assert explanation.class_index == int(np.argmax(probabilities))
    assert explanation.label == NAMES[explanation.class_index]
    assert explanation.probability == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_saliency_is_the_normalised_logit_gradient(official, explanation):
    clip = tf.constant(explanation.frames[None].astype("float32"))
    logits_model = _logits_model(official.keras_model)
    with tf.GradientTape() as tape:
        tape.watch(clip)
        logit = logits_model(clip)[0, explanation.class_index]
    gradient = np.abs(tape.gradient(logit, clip).numpy()[0]).max(axis=-1)
    # tf-keras-vis adds Keras' epsilon (1e-7) to the range; these gradients span ~2e-4.
    expected = (gradient - gradient.min()) / (gradient.max() - gradient.min() + 1e-7)
    np.testing.assert_allclose(explanation.saliency, expected, atol=1e-4)


def test_grid_png_and_gif(explanation, tmp_path):
    with Image.open(explanation.save_grid(tmp_path / "grid.png", max_rows=4)) as grid:
        assert grid.size == (660, 940)  # 3 columns x 2.2 in, 4 rows x 2.2 in + title, 100 dpi
    with Image.open(explanation.save_gif(tmp_path / "anim.gif")) as gif:
        assert gif.n_frames == 16 and gif.size == (3 * 64, 64)
        gif.seek(5)
        left = np.asarray(gif.convert("RGB"))[:, :64].astype(float)
    # GIF palettes are 256 colours: the first panel is the input frame, approximately.
    assert np.abs(left - explanation.frames[5]).mean() < 12


def test_explicit_class_and_tflite_rejection(official, explanation, tmp_path):
    _, cam, index, probability = explain_clip(official.keras_model,
                                              explanation.frames.astype("float32"), class_index=3)
    probabilities = official.predict_clips(explanation.frames[None].astype("float32"))[0]
    assert index == 3 and probability == pytest.approx(float(probabilities[3]), abs=1e-5)
    assert cam.shape == (64, 64) and np.isfinite(cam).all()
    with pytest.raises(ValueError, match=r"class_index 10 is out of range.*\[0, 10\)"):
        explain_clip(official.keras_model, explanation.frames.astype("float32"), class_index=10)
    with pytest.raises(ValueError,
                       match="model.tflite is a .tflite export, which has no gradients"):
        explain_video(tmp_path / "clip.mp4", tmp_path / "model.tflite")


def test_gradcam_plus_plus_matches_a_hand_computation():
    """GradCAM++ worked out by hand for this head, against what explain_clip returns.

    The score is logit_c = sum_k W_kc mean_ij A_kij (global average pool, linear head), so
    its gradient is g_k = W_kc / (h w) at every position. GradCAM++'s alphas are then
    g^2 / (2 g^2 + g^3 sum_ij A_k) / (their spatial sum) = 1 / (h w), its channel weights
    sum_ij relu(exp(S) g_k) / (h w) = exp(S) relu(g_k), and the map, normalised to [0, 1],
    is relu(sum_k relu(W_kc) A_k): the positive-weight class activation map.
    """
    keras.utils.set_random_seed(0)
    model = tiny_squeezetime(input_shape=(4, 96, 96, 3), num_classes=3)
    calibrate_batch_norm(model, varied_clips(16, frames=4, size=96, seed=7))
    clip = varied_clips(1, frames=4, size=96, seed=8)[0]
    features = np.asarray(keras.Model(model.input, model.get_layer("stage4_block3").output)(
        clip[None], training=False))[0]  # (3, 3, 128)
    kernel = np.asarray(model.get_layer("head").fc.kernel)
    maps = []
    for class_index in range(3):
        _, cam, index, _ = explain_clip(model, clip, class_index=class_index)
        assert index == class_index
        low = np.maximum((features * np.maximum(kernel[:, class_index], 0)).sum(axis=-1), 0)
        low = (low - low.min()) / (low.max() - low.min() + 1e-7)
        assert low.std() > 0.1  # a map with structure, not a constant
        resized = np.asarray(Image.fromarray(low.astype(np.float32)).resize((96, 96),
                                                                            Image.BILINEAR))
        expected = (resized - resized.min()) / (resized.max() - resized.min())
        np.testing.assert_allclose(cam, expected, atol=1e-4)
        maps.append(cam)
    # Each class weighs the channels otherwise: the maps differ.
    assert min(np.abs(a - b).mean() for i, a in enumerate(maps) for b in maps[i + 1:]) > 0.01


def test_overlay_blends_half_and_half():
    frames = np.full((1, 2, 2, 3), 100, np.uint8)
    blended = overlay(frames, np.zeros((1, 2, 2)))
    # jet(0) is dark blue (0, 0, 0.5): 0.5 * 100 + 0.5 * (0, 0, 127.5).
    np.testing.assert_array_equal(blended[0, 0, 0], [50, 50, 114])


def test_a_logits_head_is_explained_with_its_softmax_probability():
    keras.utils.set_random_seed(1)
    model = tiny_squeezetime(input_shape=(4, 64, 64, 3), classifier_activation=None)
    calibrate_batch_norm(model, varied_clips(8, frames=4, size=64, seed=2))
    clip = varied_clips(1, frames=4, size=64, seed=3)[0]
    logits = np.asarray(model(clip[None], training=False), dtype=np.float64)[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    _, _, index, probability = explain_clip(model, clip)
    assert index == int(np.argmax(logits))
    assert abs(logits[index] - expected[index]) > 1e-3  # the logit is not the probability
    assert probability == pytest.approx(expected[index], abs=1e-5)
