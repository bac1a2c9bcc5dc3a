"""The builder's `weights` argument (weights/initialise.py): presets, .pth, .weights.h5, .keras."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.weights.stem_mismatch import saved_weights_shapes, weights_file_mismatch
from tests.helpers.parity import LOGITS_TOLERANCE, relative_error

# Outputs by direct calls: `predict` first traces a function for each model, which costs
# several calls here and is not what these tests check.
SMALL = dict(input_shape=(16, 112, 112, 3), width_multiplier=0.25, include_preprocessing=False)


@pytest.fixture
def offline_release(parity, tmp_path, monkeypatch):
    """A local 'release' directory served through file://, and an empty Keras cache."""
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(parity["pth"], release / "SqueezeTime_K400_71.64.pth")
    monkeypatch.setenv("KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX", release.as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return release


def test_preset_downloads_converts_once_and_matches_official(parity, offline_release, tmp_path):
    model = SqueezeTime(**SMALL, num_classes=10, classifier_activation=None, weights="kinetics400")
    assert relative_error(np.asarray(model(parity["video"])), parity["logits"]) <= LOGITS_TOLERANCE
    cached = tmp_path / "keras_home" / "squeezetime" / "SqueezeTime_K400_71.64.pth"
    assert cached.exists() and cached.with_name(cached.name + ".npz").exists()
    # The second build reads the converted cache: the 'release' can be gone.
    shutil.rmtree(offline_release)
    again = SqueezeTime(**SMALL, num_classes=10, classifier_activation=None, weights="kinetics400")
    np.testing.assert_array_equal(np.asarray(again(parity["video"])),
                                  np.asarray(model(parity["video"])))


def test_other_class_count_keeps_backbone_and_warns(parity):
    with pytest.warns(UserWarning, match="10-class head but the model has 4 classes"):
        model = SqueezeTime(**SMALL, num_classes=4, weights=parity["pth"])
    reference = SqueezeTime(**SMALL, include_top=False, weights=parity["pth"])
    stem = model.get_layer("stage4_block3")
    np.testing.assert_array_equal(stem.get_weights()[0],
                                  reference.get_layer("stage4_block3").get_weights()[0])
    assert model.output_shape == (None, 4)


def test_frame_count_mismatch_names_both_counts(parity):
    with pytest.raises(ValueError, match=r"takes 16 frames.*\(16, 48, 5, 5\).*takes 8 frames"):
        SqueezeTime(**{**SMALL, "input_shape": (8, 112, 112, 3)}, num_classes=10,
                    weights=parity["pth"])


def test_width_mismatch_names_both_widths(parity):
    with pytest.raises(ValueError, match=r"width multiplier 0.25.*width multiplier 0.5"):
        SqueezeTime(**{**SMALL, "width_multiplier": 0.5}, num_classes=10, weights=parity["pth"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        SqueezeTime(**SMALL, weights=str(tmp_path / "nothing.pth"))
    fake = tmp_path / "fake.pth"
    fake.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="fake.pth"):
        SqueezeTime(**SMALL, weights=str(fake))
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"Unsupported model file .*weights.bin"):
        SqueezeTime(**SMALL, weights=str(other))
    with pytest.raises(ValueError, match=r"Unsupported model name 'kinetics700'"):
        SqueezeTime(**SMALL, weights="kinetics700")
    exported = tmp_path / "model.tflite"
    exported.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"model.tflite' is a LiteRT model, which holds no Keras"):
        SqueezeTime(**SMALL, weights=str(exported))


def test_keras_weight_files_load_through_builder(parity, tmp_path):
    source = SqueezeTime(**SMALL, num_classes=10, weights=parity["pth"])
    expected = np.asarray(source(parity["video"]))
    source.save_weights(tmp_path / "m.weights.h5")
    source.save(tmp_path / "m.keras")
    for path in ("m.weights.h5", "m.keras"):
        loaded = SqueezeTime(**SMALL, num_classes=10, weights=str(tmp_path / path))
        np.testing.assert_array_equal(np.asarray(loaded(parity["video"])), expected)
    # Another class count: the backbone is copied by path, the head is left fresh.
    with pytest.warns(UserWarning, match=r"m.keras's head .*\(512, 10\).* does not fit"):
        other = SqueezeTime(**SMALL, num_classes=7, weights=str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(other.get_layer("stage4_block3").get_weights()[0],
                                  source.get_layer("stage4_block3").get_weights()[0])
    # Another width or frame count is no fine-tuning: an error naming both, plainly.
    with pytest.raises(ValueError, match=r"m.keras has width multiplier 0.25 \(stem_conv/kernel "
                                         r"\(5, 5, 48, 16\): 16 stem channels\) but the model "
                                         r"has width multiplier 0.5"):
        SqueezeTime(**{**SMALL, "width_multiplier": 0.5}, num_classes=10,
                    weights=str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match=r"m.weights.h5 takes 16 frames .* but the model takes 8 "
                                         r"frames: build it with input_shape=\(16, H, W, 3\)"):
        SqueezeTime(**{**SMALL, "input_shape": (8, 112, 112, 3)}, num_classes=10,
                    weights=str(tmp_path / "m.weights.h5"))


TINY = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A 3-class tiny model's .weights.h5, with no config.json beside it."""
    path = tmp_path_factory.mktemp("weights") / "m.weights.h5"
    SqueezeTime(num_classes=3, **TINY).save_weights(path)
    return path


def test_a_weights_file_of_another_head_names_both_class_counts(tiny_weights):
    """Not "(width, frames, head or input size)": the head's class counts, read from the
    file; never the input size (a 32 px file loads into a 48 px model)."""
    message = weights_file_mismatch(str(tiny_weights), SqueezeTime(num_classes=5, **TINY))
    assert re.search(r"m.weights.h5 holds a 3-class head \(head/fc kernel \(512, 3\)\) but the "
                     r"model has a 5-class head: build it with num_classes=3, or put the "
                     r"config.json .* beside it", message), message
    backbone = SqueezeTime(include_top=False, **TINY)
    assert "but the model has no classification head" in weights_file_mismatch(
        str(tiny_weights), backbone)
    SqueezeTime(num_classes=3, **{**TINY, "input_shape": (4, 48, 48, 3)},
                weights=str(tiny_weights))  # another input size loads


def test_a_weights_file_of_another_width_names_it_where_the_stem_cannot(tmp_path):
    """0.3 and 0.296875 both have 19 stem channels; their last stages differ (153, 152)."""
    path = tmp_path / "w.weights.h5"
    SqueezeTime(num_classes=3, **{**TINY, "width_multiplier": 0.3}).save_weights(path)
    model = SqueezeTime(num_classes=3, **{**TINY, "width_multiplier": 0.296875})
    message = weights_file_mismatch(str(path), model)
    assert re.search(r"has width multiplier 0.3 \(its last stage has 153 planes.*\) but the "
                     r"model has width multiplier 0.297 \(152 planes\): build it with "
                     r"width_multiplier=0.3", message), message
    # The stem's reasons come first, as before.
    other_frames = SqueezeTime(num_classes=3, **{**TINY, "input_shape": (8, 32, 32, 3),
                                                 "width_multiplier": 0.3})
    assert "takes 4 frames" in weights_file_mismatch(str(path), other_frames)
    assert saved_weights_shapes(str(tmp_path / "missing.weights.h5")) == dict.fromkeys(
        saved_weights_shapes(str(path)))


def test_the_builder_explains_a_weights_file_of_another_head(tiny_weights):
    with pytest.raises(ValueError, match=r"holds a 3-class head .* has a 5-class head"):
        SqueezeTime(num_classes=5, weights=str(tiny_weights), **TINY)
