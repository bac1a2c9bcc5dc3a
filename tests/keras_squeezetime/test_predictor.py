"""`load_predictor` on every model kind: settings, class names, outputs against the model itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.layers.normalization import PIXEL_MEAN, PIXEL_STD
from keras_squeezetime.predictor import ClipSettings, load_predictor, model_kind

FRAMES, SIZE, CLASSES = 8, 64, 3
NAMES = ["archery", "bowling", "cycling"]


def _calibrated_model(damp_batch_norm, size: int = SIZE) -> keras.Model:
    """A tiny model with trained-like ranges: bounded features (damped BN) and O(1) logits."""
    model = SqueezeTime(input_shape=(FRAMES, size, size, 3), width_multiplier=0.25,
                        num_classes=CLASSES, pos_embed_sizes=(16, 8, 4, 2), dropout_rate=0.0)
    damp_batch_norm(model, seed=4)
    features = keras.Model(model.input, model.get_layer("stage4_block3").output)
    clip = np.random.default_rng(0).uniform(0, 255, (1, FRAMES, size, size, 3)).astype("float32")
    pooled = np.asarray(features(clip)).mean(axis=(1, 2))
    fc = model.get_layer("head").fc
    rng = np.random.default_rng(1)
    fc.kernel.assign(rng.normal(0, 1.0 / (pooled.std() * np.sqrt(pooled.shape[-1])),
                                fc.kernel.shape).astype("float32"))
    fc.bias.assign(np.array([0.2, -0.1, 0.0], "float32"))
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, damp_batch_norm) -> Path:
    """A trained-model folder as squeezetime-train writes it: model.keras + config.json."""
    folder = tmp_path_factory.mktemp("run")
    _calibrated_model(damp_batch_norm).save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": FRAMES, "frame_interval": 3, "image_size": SIZE, "short_side": 72,
        "num_classes": CLASSES, "width_multiplier": 0.25, "class_names": NAMES,
    }))
    return folder


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 255, (2, FRAMES, SIZE, SIZE, 3)).astype("float32")


def test_model_kind_rejects_unsupported_and_missing_models(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\0")
    with pytest.raises(ValueError, match="Unsupported model file .*model.onnx.*expected a .keras"):
        model_kind(onnx)
    with pytest.raises(ValueError, match="Unsupported model name 'kinetics700'"):
        model_kind("kinetics700")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        model_kind(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="holds no model.keras"):
        model_kind(tmp_path)
    with pytest.raises(ValueError, match="backbone without a classifier"):
        model_kind("imagenet")
    assert model_kind("kinetics400") == "preset"


def test_clip_settings_validate():
    assert ClipSettings(frames=16, frame_interval=4).span == 61
    with pytest.raises(ValueError, match="short_side .* at least image_size"):
        ClipSettings(image_size=224, short_side=200)
    with pytest.raises(ValueError, match="frames must be a positive integer"):
        ClipSettings(frames=0)


def test_keras_folder_reads_config_and_matches_the_model(model_dir, clips):
    predictor = load_predictor(model_dir)
    assert predictor.kind == "keras" and predictor.class_names == NAMES
    assert predictor.settings == ClipSettings(FRAMES, 3, SIZE, 72)
    expected = np.asarray(keras.saving.load_model(model_dir / "model.keras")(clips))
    np.testing.assert_allclose(predictor.predict_clips(clips), expected, atol=1e-6)
    # Explicit settings win over config.json; labels override the stored names.
    other = load_predictor(model_dir / "model.keras", labels=["x", "y", "z"], frame_interval=2,
                           short_side=80)
    assert other.settings == ClipSettings(FRAMES, 2, SIZE, 80)
    assert other.label(2) == "z"


def test_keras_model_rebuilt_at_another_image_size(model_dir):
    predictor = load_predictor(model_dir, image_size=96)
    assert predictor.settings.image_size == 96 and predictor.settings.short_side >= 96
    # Independent reference: the builder at 96 px loading the same .keras weights.
    reference = SqueezeTime(input_shape=(FRAMES, 96, 96, 3), width_multiplier=0.25,
                            num_classes=CLASSES, pos_embed_sizes=(16, 8, 4, 2),
                            weights=str(model_dir / "model.keras"))
    clip = np.random.default_rng(3).uniform(0, 255, (1, FRAMES, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(predictor.predict_clips(clip), reference(clip), atol=1e-5)


def test_label_count_and_frame_mismatches_are_errors(model_dir, tmp_path):
    labels = tmp_path / "four.txt"
    labels.write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match="has 4 names but .* predicts 3 classes"):
        load_predictor(model_dir, labels=str(labels))
    with pytest.raises(ValueError, match="has 400 names but .* predicts 3 classes"):
        load_predictor(model_dir, labels="kinetics400")
    with pytest.raises(ValueError, match="takes 8-frame clips"):
        load_predictor(model_dir, frames=16)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_predictor(model_dir, labels=str(tmp_path / "nope.txt"))


def test_logits_model_outputs_are_softmaxed(clips, damp_batch_norm):
    model = _calibrated_model(damp_batch_norm)
    logits_model = keras.Model(model.input, _logits(model))
    predictor = load_predictor(logits_model)
    logits = np.asarray(logits_model(clips), dtype=np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = predictor.predict_clips(clips)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(probabilities, np.asarray(model(clips)), atol=1e-6)


def _logits(model: keras.Model):
    head = model.get_layer("head")
    pooled = keras.ops.mean(model.get_layer("stage4_block3").output, axis=(1, 2))
    return head.fc(pooled)


def test_official_pth_matches_the_golden_logits(parity):
    names = [f"action {i}" for i in range(10)]
    predictor = load_predictor(parity["pth"], labels=names, image_size=112)
    assert predictor.kind == "pth" and predictor.num_classes == 10
    assert (predictor.settings.frames, predictor.settings.frame_interval) == (16, 4)
    assert predictor.settings.image_size == 112 and predictor.label(3) == "action 3"
    # The golden video is normalised; the predictor's model takes pixels in [0, 255].
    pixels = parity["video"] * np.array(PIXEL_STD, "float32") + np.array(PIXEL_MEAN, "float32")
    logits = parity["logits"].astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predictor.predict_clips(pixels), expected, atol=2e-4)
    # Default size: the official positional embeddings (56 px after the stem) mean 224 px.
    with pytest.raises(ValueError, match="has 3 names but .* predicts 10 classes"):
        load_predictor(parity["pth"], labels=["a", "b", "c"])


@pytest.mark.slow
def test_tflite_export_agrees_with_keras(model_dir, clips, tmp_path):
    import tensorflow as tf

    model = keras.saving.load_model(model_dir / "model.keras")
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    path = tmp_path / "tiny.tflite"
    path.write_bytes(converter.convert())
    (tmp_path / "tiny.labels.txt").write_text("\n".join(NAMES) + "\n")

    predictor = load_predictor(path, frame_interval=2)
    assert predictor.kind == "tflite" and predictor.keras_model is None
    assert predictor.class_names == NAMES
    assert predictor.settings == ClipSettings(FRAMES, 2, SIZE, round(SIZE * 256 / 224))
    probabilities = predictor.predict_clips(clips)
    np.testing.assert_allclose(probabilities, model(clips), atol=1e-5)
    with pytest.raises(ValueError, match="fixed by the export"):
        load_predictor(path, image_size=96)
    with pytest.raises(ValueError, match="has 2 names but .* predicts 3 classes"):
        load_predictor(path, labels=["a", "b"])
    os.remove(tmp_path / "tiny.labels.txt")
    assert load_predictor(path).label(1) == "class 1"
