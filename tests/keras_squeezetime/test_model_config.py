"""`config.json`: read and written in one place, and the one precedence rule for clip settings."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from keras_squeezetime.model_config import (
    ClipSettings,
    ModelConfig,
    config_path,
    read_model_config,
    write_model_config,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "model_config"


def test_clip_settings_validate():
    assert ClipSettings(frames=16, frame_interval=4).span == 61
    with pytest.raises(ValueError, match="short_side .* at least image_size"):
        ClipSettings(image_size=224, short_side=200)
    with pytest.raises(ValueError, match="frames must be a positive integer"):
        ClipSettings(frames=0)
    with pytest.raises(ValueError, match="frame_interval must be a positive integer"):
        ClipSettings(frame_interval=2.5)


def test_a_training_run_config_json_loads(tmp_path):
    """A config.json as squeezetime-train writes it (every flag and the resolved recipe)."""
    written = json.loads((FIXTURES / "squeezetime_train_config.json").read_text())
    config = read_model_config(FIXTURES / "squeezetime_train_config.json")
    assert (config.frames, config.frame_interval, config.image_size, config.short_side) == (
        16, 4, 112, 128)
    assert config.num_classes == 8 and config.class_names == tuple(written["class_names"])
    assert config.width_multiplier == 0.5 and config.pos_embed_sizes == (56, 28, 14, 7)
    assert config.val_views == (1, 1) and config.test_views == (10, 3)
    # Written before the test crop was recorded: the model's size, the recipe's 224/224 ratio.
    assert (config.test_image_size, config.test_short_side) == (112, 112)
    assert config.extra["learning_rate"] == written["learning_rate"]
    assert config.extra["train_data"] == "data/train/*.tfrecord"
    # Written back, every key of the original survives with its value, the test protocol
    # now with its crop size.
    copy = write_model_config(tmp_path, config)
    again = json.loads(Path(copy).read_text())
    kept = {k: v for k, v in written.items() if k != "test_short_side"}
    assert {k: again[k] for k in kept} == kept
    assert (again["test_image_size"], again["test_short_side"]) == (112, 112)
    assert read_model_config(tmp_path) == config


def test_precedence_defaults_file_model_arguments(tmp_path):
    defaults = ModelConfig()
    assert defaults.clip_settings() == ClipSettings(16, 4, 224, 256)
    assert defaults.clip_settings("test") == ClipSettings(16, 4, 224, 224)
    (tmp_path / "config.json").write_text(json.dumps(
        {"frames": 8, "frame_interval": 3, "image_size": 64, "short_side": 72,
         "test_image_size": 64, "test_short_side": 64}))
    from_file = read_model_config(tmp_path)
    assert from_file.clip_settings() == ClipSettings(8, 3, 64, 72)
    # What the model fixes beats the file: the size, with each protocol's ratio kept.
    fixed = from_file.fixed_by_model(frames=8, image_size=96)
    assert fixed.clip_settings() == ClipSettings(8, 3, 96, 108)
    assert fixed.clip_settings("test") == ClipSettings(8, 3, 96, 96)
    # Explicit arguments beat everything; a size alone keeps the protocol's ratio.
    assert fixed.clip_settings(frame_interval=2, short_side=100) == ClipSettings(8, 2, 96, 100)
    assert defaults.clip_settings(image_size=112) == ClipSettings(16, 4, 112, 128)
    assert defaults.clip_settings("test", image_size=112) == ClipSettings(16, 4, 112, 112)
    with pytest.raises(ValueError, match="protocol must be one of"):
        defaults.clip_settings("train")


def test_builder_kwargs_and_input_shape():
    config = ModelConfig(frames=8, image_size=64, num_classes=3, width_multiplier=0.25,
                         pos_embed_sizes=[16, 8, 4, 2])
    assert config.builder_kwargs() == {"width_multiplier": 0.25, "num_classes": 3,
                                       "pos_embed_sizes": (16, 8, 4, 2)}
    assert config.input_shape() == (8, 64, 64, 3)
    assert ModelConfig().builder_kwargs()["include_top"] is False


def test_include_preprocessing_is_recorded_and_old_files_mean_true(tmp_path):
    """A model built with include_preprocessing=False takes normalised clips: config.json
    says so and the model rebuilt from it (e.g. with its .weights.h5) is built so too."""
    raw = ModelConfig(frames=4, image_size=32, num_classes=2, include_preprocessing=False)
    assert raw.builder_kwargs()["include_preprocessing"] is False
    write_model_config(tmp_path, raw)
    assert json.loads((tmp_path / "config.json").read_text())["include_preprocessing"] is False
    assert read_model_config(tmp_path) == raw
    # Files written before the key existed (and null) mean the builder's default: True.
    for data in ({"frames": 4}, {"frames": 4, "include_preprocessing": None}):
        (tmp_path / "config.json").write_text(json.dumps(data))
        assert read_model_config(tmp_path).include_preprocessing is True
    (tmp_path / "config.json").write_text(json.dumps({"include_preprocessing": "no"}))
    with pytest.raises(ValueError, match=r"config.json: include_preprocessing must be true or "
                                         r"false; got 'no'"):
        read_model_config(tmp_path)


def test_bad_files_and_values_name_the_file(tmp_path):
    assert read_model_config(tmp_path) is None
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"Cannot read {path}"):
        read_model_config(tmp_path / "model.keras")  # the config.json beside a model file
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object; got list"):
        read_model_config(path)
    path.write_text(json.dumps({"frames": "sixteen"}))
    with pytest.raises(ValueError, match=r"config.json: frames must be a positive integer"):
        read_model_config(path)
    path.write_text(json.dumps({"num_classes": 3, "class_names": ["a", "b"]}))
    with pytest.raises(ValueError, match="class_names has 2 names but num_classes is 3"):
        read_model_config(path)


def test_write_is_atomic_and_an_ordinary_file(tmp_path):
    folder = tmp_path / "run"
    path = write_model_config(folder, ModelConfig(num_classes=2, class_names=("a", "b")))
    assert path == str(folder / "config.json") == config_path(folder)
    assert os.listdir(folder) == ["config.json"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    assert read_model_config(folder / "model.weights.h5").class_names == ("a", "b")


def test_a_run_checkpoint_reads_the_runs_config(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.keras").write_bytes(b"")
    config = ModelConfig(frames=8, frame_interval=2, num_classes=3)
    write_model_config(run, config)
    assert read_model_config(run / "checkpoints" / "best.keras") == config
    # A config.json beside the file wins; a folder of another name has no such fallback.
    beside = config.replace(frame_interval=5)
    write_model_config(run / "checkpoints", beside)
    assert read_model_config(run / "checkpoints" / "best.keras") == beside
    (run / "saved").mkdir()
    assert read_model_config(run / "saved" / "best.keras") is None
