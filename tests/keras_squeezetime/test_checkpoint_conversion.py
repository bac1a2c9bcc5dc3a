"""`convert_checkpoint`: an official .pth to a Keras .weights.h5 the builder loads exactly."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.checkpoint_conversion import convert_checkpoint
from keras_squeezetime.model_config import ModelConfig, write_model_config
from keras_squeezetime.model_loading import load_model


def test_conversion_round_trips_every_weight(parity, tmp_path):
    out = tmp_path / "fixture.weights.h5"
    kwargs = convert_checkpoint(parity["pth"], out, image_size=112)
    # The builder arguments of the checkpoint's own model, as the CLI prints them.
    assert kwargs == {"width_multiplier": 0.25, "pos_embed_sizes": [56, 28, 14, 7],
                      "num_classes": 10, "input_shape": [16, 112, 112, 3]}
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["converted_from"] == os.path.abspath(parity["pth"])
    assert record["loaded_keys"] == 653  # every key of the fixture but the BN counters
    assert (record["frames"], record["image_size"], record["num_classes"]) == (16, 112, 10)
    converted = SqueezeTime(**kwargs, weights=str(out))
    direct = SqueezeTime(**kwargs, weights=parity["pth"])
    for a, b in zip(converted.weights, direct.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "fixture.weights.h5"]
    # The config.json beside it makes the file a model the loaders take by its path alone.
    loaded = load_model(out)
    assert loaded.kind == "weights" and loaded.config == load_model(parity["pth"],
                                                                    image_size=112).config
    for a, b in zip(loaded.model.weights, direct.weights):
        np.testing.assert_array_equal(a, b)
    convert_checkpoint(parity["pth"], out, image_size=112)  # the same model again: fine


def test_a_folder_holding_another_models_config_is_refused(parity, tmp_path):
    write_model_config(tmp_path, ModelConfig(frames=8, num_classes=3, width_multiplier=0.5))
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match=r"holds the config.json of another model \(frames 8, "
                                         r"classes 3, width 0.5\); convert into a folder"):
        convert_checkpoint(parity["pth"], tmp_path / "official.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["config.json"]
    assert (tmp_path / "config.json").read_text() == before


def test_bad_sources_and_outputs_are_named(parity, tmp_path):
    with pytest.raises(ValueError, match=r"must end in '.weights.h5'.*model.h5"):
        convert_checkpoint(parity["pth"], tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        convert_checkpoint(tmp_path / "nothing.pth", tmp_path / "o.weights.h5")
    not_squeezetime = tmp_path / "other.pth"
    # A readable torch-style zip whose pickle holds no SqueezeTime state dict.
    with zipfile.ZipFile(not_squeezetime, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"epoch": 3}, protocol=2))
    with pytest.raises(ValueError, match="other.pth"):
        convert_checkpoint(not_squeezetime, tmp_path / "o.weights.h5")
    assert not (tmp_path / "o.weights.h5").exists()
