"""`load_model` and `model_kind` on every kind, offline presets, and `load_weights_into`."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, presets
from keras_squeezetime.model_config import ClipSettings, ModelConfig, write_model_config
from keras_squeezetime.model_loading import load_model, load_weights_into, model_kind

SMALL = dict(width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2))
TINY = dict(input_shape=(4, 32, 32, 3), width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1))


@pytest.fixture(scope="module")
def run_model():
    """The model `run_folder` holds (read only): what loading it must give back."""
    return SqueezeTime(input_shape=(8, 64, 64, 3), num_classes=3, **SMALL)


@pytest.fixture(scope="module")
def run_folder(run_model, tmp_path_factory):
    """model.keras, model.weights.h5 and config.json, as squeezetime-train leaves them."""
    folder = tmp_path_factory.mktemp("run")
    run_model.save(folder / "model.keras")
    run_model.save_weights(folder / "model.weights.h5")
    write_model_config(folder, ModelConfig(
        frames=8, frame_interval=3, image_size=64, short_side=72, num_classes=3,
        class_names=("a", "b", "c"), width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2),
        extra={"epochs": 2}))
    return folder


@pytest.fixture
def release(parity, tmp_path, monkeypatch):
    """A local 'release' folder served through file://, and an empty Keras cache."""
    folder = tmp_path / "release"
    folder.mkdir()
    monkeypatch.setenv(presets.URL_PREFIX_ENV, folder.as_uri())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return folder


def test_model_kind_of_every_source(run_folder, tmp_path):
    assert model_kind("kinetics400") == model_kind("imagenet") == "preset"
    assert model_kind(run_folder) == "folder"
    assert model_kind(run_folder / "model.keras") == "keras"
    assert model_kind(run_folder / "model.weights.h5") == "weights"
    for name, kind in (("m.tflite", "tflite"), ("m.pth", "pth"), ("m.pt", "pth")):
        (tmp_path / name).write_bytes(b"\0")
        assert model_kind(tmp_path / name) == kind
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"Unsupported model file .*model.onnx.*\.keras.*"
                                         r"\.tflite.*\.pth"):
        model_kind(onnx)
    with pytest.raises(ValueError, match="Unsupported model name 'kinetics700'"):
        model_kind("kinetics700")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        model_kind(tmp_path / "missing.keras")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no model.keras"):
        model_kind(tmp_path / "empty")


def test_keras_kinds_carry_their_config(run_folder, run_model):
    clip = np.random.default_rng(0).uniform(0, 255, (1, 8, 64, 64, 3)).astype("float32")
    expected = np.asarray(run_model(clip))
    for source, kind in ((run_folder, "folder"), (run_folder / "model.keras", "keras"),
                         (run_folder / "model.weights.h5", "weights")):
        loaded = load_model(source)
        assert loaded.kind == kind and loaded.source == str(source)
        assert (loaded.config.frames, loaded.config.frame_interval, loaded.config.image_size,
                loaded.config.short_side) == (8, 3, 64, 72)
        assert loaded.config.class_names == ("a", "b", "c")
        assert loaded.config.extra == {"epochs": 2}
        np.testing.assert_allclose(np.asarray(loaded.model(clip)), expected, atol=1e-6)
    # Another size: the same weights rebuilt; the short side keeps the file's ratio.
    resized = load_model(run_folder, image_size=96)
    assert resized.model.input_shape == (None, 8, 96, 96, 3)
    assert (resized.config.image_size, resized.config.short_side) == (96, 108)
    with pytest.raises(ValueError, match="takes 8-frame clips.*frames=16"):
        load_model(run_folder, frames=16)


def test_a_keras_file_without_config_json_takes_its_settings_from_the_model(tmp_path):
    SqueezeTime(input_shape=(4, 96, 96, 3), num_classes=5, **SMALL).save(tmp_path / "m.keras")
    config = load_model(tmp_path / "m.keras").config
    assert (config.frames, config.image_size, config.num_classes) == (4, 96, 5)
    assert config.width_multiplier == 0.25 and config.pos_embed_sizes == (16, 8, 4, 2)
    # The Kinetics ratio of short side to crop (256/224) at the model's size.
    assert config.short_side == round(96 * 256 / 224)


def test_official_checkpoint(parity, tmp_path):
    loaded = load_model(parity["pth"], image_size=112)
    assert loaded.kind == "pth" and loaded.model.output_shape == (None, 10)
    assert (loaded.config.frames, loaded.config.num_classes, loaded.config.width_multiplier,
            loaded.config.class_names) == (16, 10, 0.25, None)
    # Without a size: the one its embeddings were made for (56 x 4 = 224 px).
    assert load_model(parity["pth"]).config.image_size == 224
    (tmp_path / "m.tflite").write_bytes(b"TFL3")
    with pytest.raises(ValueError, match="is a LiteRT model, not a Keras model"):
        load_model(tmp_path / "m.tflite")
    (tmp_path / "broken.keras").write_text("nope")  # Keras itself says "File not found"
    with pytest.raises(ValueError, match=r"broken.keras'.*not a .keras archive"):
        load_model(tmp_path / "broken.keras")


def test_offline_preset_names_the_preset_url_and_mirror_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv(presets.URL_PREFIX_ENV, (tmp_path / "unreachable").as_uri())
    url = presets.preset_url("hmdb51")
    with pytest.raises(presets.PresetDownloadError) as error:
        load_model("hmdb51")
    message = str(error.value)
    for fragment in ("'hmdb51'", url, presets.URL_PREFIX_ENV, "SqueezeTime_HMDB51_65.56.pth"):
        assert fragment in message, message
    assert not (tmp_path / "keras_home" / "squeezetime" / "SqueezeTime_HMDB51_65.56.pth").exists()


def test_imagenet_preset_loads_what_fits_and_skips_the_rest(parity, release):
    """The official loader skips keys whose shapes differ; so does the ImageNet preset."""
    shutil.copy(parity["pth"], release / presets.PRESETS["imagenet"]["file"])
    common = dict(width_multiplier=0.25, include_preprocessing=False)
    keras.utils.set_random_seed(0)
    # 8 frames: the stem of the (16-frame) checkpoint does not fit; neither does its head.
    with pytest.warns(UserWarning) as warned:
        model = SqueezeTime(input_shape=(8, 112, 112, 3), num_classes=5, weights="imagenet",
                            **common)
    messages = " ".join(str(w.message) for w in warned)
    assert "10-class head but the model has 5 classes" in messages
    assert "Partially loading preset 'imagenet'" in messages and "conv1.weight" in messages
    keras.utils.set_random_seed(0)
    fresh = SqueezeTime(input_shape=(8, 112, 112, 3), num_classes=5, **common)
    reference = SqueezeTime(input_shape=(16, 112, 112, 3), num_classes=10,
                            weights=parity["pth"], **common)
    for variable, before, loaded in zip(model.weights, fresh.weights, reference.weights):
        assert variable.path == before.path == loaded.path
        if variable.path in ("stem_conv/kernel",) or variable.path.startswith("head/"):
            np.testing.assert_array_equal(variable, before)  # skipped: fresh
        else:
            np.testing.assert_array_equal(variable, loaded)  # loaded from the checkpoint


def test_load_weights_into_from_weights_h5_of_another_head(run_folder, run_model):
    target = SqueezeTime(input_shape=(8, 64, 64, 3), num_classes=7, **SMALL)
    with pytest.warns(UserWarning, match="does not fit"):
        report = load_weights_into(target, run_folder / "model.weights.h5")
    assert report["skipped"] == ["head/fc/bias", "head/fc/kernel"]
    np.testing.assert_array_equal(target.get_layer("stage3_block2").get_weights()[0],
                                  run_model.get_layer("stage3_block2").get_weights()[0])
    (run_folder / "model.weights.h5").rename(run_folder / "moved.weights.h5")
    try:
        with pytest.raises(FileNotFoundError, match="model.weights.h5"):
            load_weights_into(target, run_folder / "model.weights.h5")
    finally:
        (run_folder / "moved.weights.h5").rename(run_folder / "model.weights.h5")
    assert json.loads((run_folder / "config.json").read_text())["num_classes"] == 3


def test_a_preset_and_its_checkpoint_carry_their_dataset_protocol(parity, release, monkeypatch):
    """HMDB51's official validation is 2 clips x 3 crops of 224 at short side 224, its test
    2 x 3 crops of 286 at short side 286; Kinetics' test 10x3 at 224 (REFERENCE.md): what
    `squeezetime-evaluate` uses by default for the preset and its .pth."""
    assert presets.PRESETS["hmdb51"]["protocol"] == {
        "val_views": (2, 3), "short_side": 224, "test_views": (2, 3), "test_short_side": 286,
        "test_image_size": 286}
    config = parity["config"]
    # A stand-in preset: the parity checkpoint (10 classes) under HMDB51's protocol.
    tiny = dict(presets.PRESETS["hmdb51"], file="tiny_hmdb.pth", num_classes=10, labels=None,
                width_multiplier=config["widen_factor"],
                pos_embed_sizes=tuple(config["pos_dim"]))
    monkeypatch.setitem(presets.PRESETS, "tiny_hmdb", tiny)
    shutil.copy(parity["pth"], release / "tiny_hmdb.pth")
    loaded = load_model("tiny_hmdb")
    assert loaded.config.test_views == (2, 3) and loaded.config.val_views == (2, 3)
    assert loaded.config.clip_settings("test") == ClipSettings(16, 4, 286, 286)
    assert loaded.config.clip_settings("val") == ClipSettings(16, 4, 224, 224)
    # Run at 112 px, the test crop keeps its 286/224 ratio to the model's size.
    smaller = load_model("tiny_hmdb", image_size=112).config
    assert smaller.clip_settings("test") == ClipSettings(16, 4, 143, 143)
    assert smaller.clip_settings("val") == ClipSettings(16, 4, 112, 112)
    # A .pth whose class count names no official dataset gets the default (Kinetics) protocol.
    assert load_model(parity["pth"]).config.test_views == (10, 3)


def test_the_width_multiplier_survives_save_and_reload(tmp_path):
    """0.3 came back as 0.296875 (stem channels / 64), whose model has 152 stage-4 planes
    instead of 153: its config.json could not load the run's .weights.h5."""
    model = SqueezeTime(num_classes=2, **{**TINY, "width_multiplier": 0.3})
    model.save(tmp_path / "m.keras")
    config = load_model(tmp_path / "m.keras").config
    assert config.width_multiplier == 0.3
    run = tmp_path / "run"
    run.mkdir()
    write_model_config(run, config)
    model.save_weights(run / "model.weights.h5")
    reloaded = load_model(run)
    assert reloaded.config.width_multiplier == 0.3
    clip = np.random.default_rng(0).uniform(0, 255, (1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(reloaded.model(clip)), np.asarray(model(clip)),
                               atol=1e-6)


def test_a_backbone_has_no_classes_and_a_nested_one_gives_its_settings(tmp_path):
    backbone = SqueezeTime(include_top=False, pooling="avg", **TINY)
    backbone.save(tmp_path / "backbone.keras")
    config = load_model(tmp_path / "backbone.keras").config
    assert config.num_classes is None  # was 512, the feature width
    assert config.width_multiplier == 0.25 and config.pos_embed_sizes == (8, 4, 2, 1)
    # Inside your own model: its settings are the nested SqueezeTime's (they were the
    # defaults, width 1.0 and (56, 28, 14, 7)); the classes your head's.
    clip = keras.Input((4, 32, 32, 3))
    keras.Model(clip, keras.layers.Dense(3)(backbone(clip))).save(tmp_path / "user.keras")
    config = load_model(tmp_path / "user.keras").config
    assert (config.width_multiplier, config.pos_embed_sizes, config.num_classes) == (
        0.25, (8, 4, 2, 1), 3)
    # Wrapped without a head of its own: still features.
    keras.Model(clip, backbone(clip)).save(tmp_path / "wrapped.keras")
    assert load_model(tmp_path / "wrapped.keras").config.num_classes is None
    # The README's way: a head on the backbone's output tensor, one flat model.
    inputs = keras.Input((4, 32, 32, 3))
    flat = SqueezeTime(include_top=False, pooling="avg", input_tensor=inputs,
                       **{k: v for k, v in TINY.items() if k != "input_shape"})
    keras.Model(inputs, keras.layers.Dense(5)(flat.output)).save(tmp_path / "flat.keras")
    config = load_model(tmp_path / "flat.keras").config
    assert (config.num_classes, config.width_multiplier) == (5, 0.25)
    # Two SqueezeTime models: which one fixes the settings cannot be told.
    other = SqueezeTime(include_top=False, pooling="avg", name="other", **TINY)
    two = keras.Model(clip, keras.layers.Concatenate()([backbone(clip), other(clip)]))
    two.save(tmp_path / "two.keras")
    with pytest.raises(ValueError, match=r"two.keras: .* holds 2 SqueezeTime models "
                                         r"\(squeezetime, other\)"):
        load_model(tmp_path / "two.keras")


def test_include_preprocessing_is_read_from_the_model_and_rebuilt_from_config_json(tmp_path):
    """A model built with include_preprocessing=False was rebuilt from config.json and its
    .weights.h5 with the normalisation inside (another model: raw pixels normalised twice)."""
    model = SqueezeTime(num_classes=2, include_preprocessing=False, **TINY)
    model.save(tmp_path / "m.keras")
    config = load_model(tmp_path / "m.keras").config
    assert config.include_preprocessing is False
    run = tmp_path / "run"
    run.mkdir()
    write_model_config(run, config)
    model.save_weights(run / "model.weights.h5")
    reloaded = load_model(run)
    assert reloaded.config.include_preprocessing is False
    assert "normalization" not in {layer.name for layer in reloaded.model.layers}
    clip = np.random.default_rng(1).normal(0, 1, (1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(reloaded.model(clip)), np.asarray(model(clip)),
                               atol=1e-6)


def test_a_non_square_model_loads_square_with_image_size(tmp_path):
    """The builder takes any height and width; the tools cut square clips."""
    model = SqueezeTime(num_classes=2, **{**TINY, "input_shape": (4, 32, 48, 3)})
    model.save(tmp_path / "wide.keras")
    with pytest.raises(ValueError, match=r"wide.keras: .*input is 32x48 px.*builder takes any "
                                         r"height and width.*square.*image_size=32"):
        load_model(tmp_path / "wide.keras")
    loaded = load_model(tmp_path / "wide.keras", image_size=32)
    assert loaded.model.input_shape == (None, 4, 32, 32, 3)
    assert loaded.config.image_size == 32 and loaded.config.num_classes == 2
