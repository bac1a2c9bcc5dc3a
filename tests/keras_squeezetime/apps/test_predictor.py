"""`load_predictor` on every model kind: settings, class names, outputs against the model itself.

The model is `discriminating_model`: its top class changes from clip to clip, so a
predictor (or a LiteRT export) that ignored or garbled its input would fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.apps.predictor import load_predictor
from keras_squeezetime.layers.normalization import PIXEL_MEAN, PIXEL_STD
from keras_squeezetime.model_config import ClipSettings, ModelConfig, write_model_config
from tests.helpers import (
    assert_input_dependent,
    discriminating_model,
    logits,
    tiny_squeezetime,
    varied_clips,
)

FRAMES, SIZE, CLASSES = 8, 64, 3
NAMES = ["archery", "bowling", "cycling"]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return discriminating_model(FRAMES, SIZE, num_classes=CLASSES, seed=4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, model) -> Path:
    """A trained-model folder as squeezetime-train writes it: model.keras + config.json."""
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": FRAMES, "frame_interval": 3, "image_size": SIZE, "short_side": 72,
        "num_classes": CLASSES, "width_multiplier": 0.25, "class_names": NAMES,
        "pos_embed_sizes": [16, 8, 4, 2], "epochs": 7,
    }))
    return folder


@pytest.fixture(scope="module")
def clips(model) -> np.ndarray:
    clips = varied_clips(12, FRAMES, SIZE, seed=2)
    assert_input_dependent(model, clips)  # the comparisons below can fail
    return clips


@pytest.fixture(scope="module")
def sigmoid_model(model, clips) -> keras.Model:
    """`model` with a sigmoid head: `discriminating_model(..., classifier_activation=
    "sigmoid")`, its weights copied rather than calibrated again. Its independent class
    probabilities change from clip to clip (`model`'s logits, through a sigmoid)."""
    sigmoid = tiny_squeezetime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                               classifier_activation="sigmoid")
    sigmoid.set_weights(model.get_weights())
    assert_input_dependent(sigmoid, clips)
    return sigmoid


def test_keras_folder_reads_config_and_matches_the_model(model_dir, model, clips):
    predictor = load_predictor(model_dir)
    assert predictor.kind == "folder" and predictor.class_names == NAMES
    assert predictor.settings == ClipSettings(FRAMES, 3, SIZE, 72)
    probabilities = predictor.predict_clips(clips)
    np.testing.assert_allclose(probabilities, np.asarray(model(clips)), atol=1e-6)
    assert len(set(probabilities.argmax(1).tolist())) >= 2
    # Explicit settings win over config.json; labels override the stored names.
    other = load_predictor(model_dir / "model.keras", labels=["x", "y", "z"], frame_interval=2,
                           short_side=80)
    assert other.kind == "keras" and other.settings == ClipSettings(FRAMES, 2, SIZE, 80)
    assert other.label(2) == "z"
    # What load_model returns carries the same config.json along.
    from keras_squeezetime.model_loading import load_model

    loaded = load_predictor(load_model(model_dir))
    assert loaded.class_names == NAMES and loaded.settings == predictor.settings
    np.testing.assert_allclose(loaded.predict_clips(clips), probabilities, atol=1e-6)


def test_keras_model_rebuilt_at_another_image_size(model_dir):
    predictor = load_predictor(model_dir, image_size=96)
    # Only the size is given: the short side keeps config.json's ratio, 72/64.
    assert predictor.settings == ClipSettings(FRAMES, 3, 96, 108)
    # Independent reference: the builder at 96 px loading the same .keras weights.
    reference = SqueezeTime(input_shape=(FRAMES, 96, 96, 3), width_multiplier=0.25,
                            num_classes=CLASSES, pos_embed_sizes=(16, 8, 4, 2),
                            weights=str(model_dir / "model.keras"))
    clips = varied_clips(4, FRAMES, 96, seed=3)
    np.testing.assert_allclose(predictor.predict_clips(clips), reference(clips), atol=1e-6)


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
    with pytest.raises(ValueError, match="backbone without a classifier"):
        load_predictor("imagenet")


def test_logits_model_outputs_are_softmaxed(model, clips):
    pooled = keras.ops.mean(model.get_layer("stage4_block3").output, axis=(1, 2))
    logits_model = keras.Model(model.input, model.get_layer("head").fc(pooled))
    predictor = load_predictor(logits_model)
    scores = logits(model, clips)
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    probabilities = predictor.predict_clips(clips)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(probabilities, np.asarray(model(clips)), atol=1e-6)


def test_sigmoid_head_scores_pass_through_and_a_pooled_backbone_is_refused(
        model, sigmoid_model, clips):
    """A sigmoid head gives one probability per class (not a distribution): returned as
    the model gives them, not softmaxed. Pooled backbone features are not class scores."""
    scores = load_predictor(sigmoid_model).predict_clips(clips)
    # Independent: the sigmoid of the softmax model's logits (the same weights), per clip.
    head_logits = logits(model, clips)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-head_logits)), atol=1e-6)
    softmaxed = np.exp(head_logits) / np.exp(head_logits).sum(axis=1, keepdims=True)
    assert np.abs(scores - softmaxed).max() > 0.1
    assert not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    backbone = SqueezeTime(input_shape=tuple(model.input_shape[1:]), width_multiplier=0.25,
                           include_top=False, pooling="avg")
    with pytest.raises(ValueError, match=r"pooled features .*not class scores"):
        load_predictor(backbone)


def test_official_pth_matches_the_golden_logits(parity):
    names = [f"action {i}" for i in range(10)]
    predictor = load_predictor(parity["pth"], labels=names, image_size=112)
    assert predictor.kind == "pth" and predictor.num_classes == 10
    assert (predictor.settings.frames, predictor.settings.frame_interval) == (16, 4)
    assert predictor.settings.image_size == 112 and predictor.label(3) == "action 3"
    # The golden video is normalised; the predictor's model takes pixels in [0, 255].
    pixels = parity["video"] * np.array(PIXEL_STD, "float32") + np.array(PIXEL_MEAN, "float32")
    golden = parity["logits"].astype(np.float64)
    expected = np.exp(golden) / np.exp(golden).sum(axis=1, keepdims=True)
    # Measured 1.4e-6: the logits agree to 2e-6 relative (test_parity), and un-normalising
    # the golden input rounds it in float32.
    np.testing.assert_allclose(predictor.predict_clips(pixels), expected, atol=5e-6)
    with pytest.raises(ValueError, match="has 3 names but .* predicts 10 classes"):
        load_predictor(parity["pth"], labels=["a", "b", "c"])


@pytest.mark.slow
def test_tflite_export_agrees_with_keras(model, model_dir, clips, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    sampling = {"frames": FRAMES, "frame_interval": 5, "image_size": SIZE, "short_side": 70}
    path = tmp_path / "tiny.tflite"
    export_tflite(model, path, class_names=NAMES, sampling=sampling)

    predictor = load_predictor(path)
    assert predictor.kind == "tflite" and predictor.keras_model is None
    assert predictor.class_names == NAMES
    # The settings embedded at export, as squeezetime-eval-tflite reads them.
    assert predictor.settings == ClipSettings(FRAMES, 5, SIZE, 70)
    probabilities = predictor.predict_clips(clips)
    expected = np.asarray(model(clips))
    # XNNPACK and oneDNN sum in other orders: up to 2e-5 measured on this model's clips.
    np.testing.assert_allclose(probabilities, expected, atol=5e-5)
    np.testing.assert_array_equal(probabilities.argmax(1), expected.argmax(1))
    assert load_predictor(path, frame_interval=2).settings == ClipSettings(FRAMES, 2, SIZE, 70)
    with pytest.raises(ValueError, match="fixed by the export"):
        load_predictor(path, image_size=96)
    with pytest.raises(ValueError, match="has 2 names but .* predicts 3 classes"):
        load_predictor(path, labels=["a", "b"])
    # A config.json beside the file from another run: what the file embeds wins, as in the
    # LiteRT runner that squeezetime-eval-tflite uses (one rule, `LiteRTModel.model_config`).
    write_model_config(tmp_path, ModelConfig(image_size=2 * SIZE, short_side=150,
                                             class_names=tuple(reversed(NAMES))))
    beside = load_predictor(path)
    assert beside.class_names == NAMES
    assert beside.settings == ClipSettings(FRAMES, 5, SIZE, 70)
    assert beside.config == LiteRTModel(path).model_config()
    os.remove(tmp_path / "config.json")

    # Without embedded names, the labels file beside the model names the classes. This
    # file takes `--input-layout stacked` (S, S, 3T) input: the predictor still takes pixel
    # clips (the runner stacks them) and gives the frames file's probabilities.
    bare = tmp_path / "bare.tflite"
    export_tflite(model, bare, input_layout="stacked")
    assert load_predictor(bare).label(1) == "class 1"
    (tmp_path / "bare.labels.txt").write_text("\n".join(NAMES) + "\n")
    stacked = load_predictor(bare)
    assert stacked.class_names == NAMES
    # The stem sums its channels in another order; this model amplifies that rounding to
    # 1.2e-5 (tests/tflite checks 1e-5 on a model that does not amplify it).
    np.testing.assert_allclose(stacked.predict_clips(clips), probabilities, atol=3e-5)
    os.remove(tmp_path / "bare.labels.txt")
    assert load_predictor(bare).settings == ClipSettings(FRAMES, 4, SIZE, 73)


@pytest.mark.slow
def test_tflite_probabilities_are_the_files_own(model, sigmoid_model, clips, tmp_path):
    """An int8 file's softmax comes in steps of 1/256 (its rows need not sum to 1): the
    predictor gives them as the file does, not a softmax of them; the file's own are read
    here with the LiteRT `Interpreter` directly (not the package's runner, which the
    predictor uses). A sigmoid head's file gives independent scores, flagged as such,
    the Keras model's within float rounding."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite.export import export_tflite

    path = tmp_path / "int8.tflite"
    export_tflite(model, path, quantization="int8", representative_dataset=clips)
    predictor = load_predictor(path)
    assert predictor.scores == "probabilities"
    signature = Interpreter(model_path=str(path), num_threads=2).get_signature_runner(
        "serving_default")
    # A float32 input and output (the default `input_type`, no `integer_output`): the
    # clip goes in as it is and the probabilities come out as they are.
    assert signature.get_input_details()["video"]["dtype"] == np.float32
    assert signature.get_output_details()["probabilities"]["dtype"] == np.float32
    expected = np.stack([signature(video=clip[None])["probabilities"][0] for clip in clips])
    np.testing.assert_array_equal(predictor.predict_clips(clips), expected)
    assert expected.max() > 0.5  # a softmax of these would put every score near 1/3
    assert len(set(expected.argmax(1).tolist())) >= 2  # the file's answers depend on the clip

    export_tflite(sigmoid_model, tmp_path / "sigmoid.tflite")
    independent = load_predictor(tmp_path / "sigmoid.tflite")
    assert independent.independent_scores
    scores, reference = independent.predict_clips(clips), np.asarray(sigmoid_model(clips))
    # XNNPACK and oneDNN sum in other orders: up to 1.4e-5 measured on these clips (this
    # model amplifies float rounding, see test_tflite_export_agrees_with_keras).
    np.testing.assert_allclose(scores, reference, atol=3e-5)
    np.testing.assert_array_equal(scores.argmax(1), reference.argmax(1))
