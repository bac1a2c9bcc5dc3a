"""Preset table and offline resolution through file:// URLs (never the network)."""

from __future__ import annotations

import shutil

import pytest

from keras_squeezetime import presets
from keras_squeezetime.labels import load_labels
from keras_squeezetime.model_config import ModelConfig
from keras_squeezetime.weights.checkpoint import inspect_checkpoint

FIXTURE = "squeezetime_w0.25_f16_112px.pth"


def test_table():
    assert set(presets.PRESETS) == {"kinetics400", "kinetics600", "hmdb51", "imagenet"}
    files = {name: preset["file"] for name, preset in presets.PRESETS.items()}
    assert files == {
        "kinetics400": "SqueezeTime_K400_71.64.pth",
        "kinetics600": "SqueezeTime_K600_76.06.pth",
        "hmdb51": "SqueezeTime_HMDB51_65.56.pth",
        "imagenet": "SqueezeTime_in1k_pretrain.pth",
    }
    for name, preset in presets.PRESETS.items():
        assert preset["url"] == (
            "https://github.com/xinghaochen/SqueezeTime/releases/download/ckpts/" + preset["file"]
        )
        assert preset["frames"] == 16 and preset["width_multiplier"] == 1.0
        assert preset["pos_embed_sizes"] == (56, 28, 14, 7)
        if preset["num_classes"] is None:
            assert name == "imagenet" and preset["labels"] is None
        else:
            assert len(load_labels(preset["labels"])) == preset["num_classes"]


def test_presets_are_listed_and_take_the_owning_defaults():
    assert presets.list_presets() == ["hmdb51", "imagenet", "kinetics400", "kinetics600"]
    assert presets.list_presets(classifiers_only=True) == ["hmdb51", "kinetics400",
                                                           "kinetics600"]
    # The official model is the defaults' model; the protocols hold only what differs
    # from ModelConfig's (the Kinetics protocol), so one place owns each default.
    defaults = ModelConfig()
    for name, preset in presets.PRESETS.items():
        assert (preset["frames"], preset["width_multiplier"], preset["pos_embed_sizes"]) == (
            defaults.frames, defaults.width_multiplier, defaults.pos_embed_sizes)
        protocol = ModelConfig(**preset["protocol"])
        assert all(getattr(protocol, key) != getattr(defaults, key)
                   for key in preset["protocol"]), name
    assert presets.PRESETS["kinetics400"]["protocol"] == {}


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match=r"'k700'.*hmdb51, imagenet, kinetics400, kinetics600"):
        presets.resolve_preset("k700")


def test_url_precedence(monkeypatch):
    monkeypatch.delenv(presets.URL_PREFIX_ENV, raising=False)
    assert presets.preset_url("hmdb51") == presets.PRESETS["hmdb51"]["url"]
    monkeypatch.setenv(presets.URL_PREFIX_ENV, "https://mirror.example/st/")
    assert presets.preset_url("hmdb51") == "https://mirror.example/st/SqueezeTime_HMDB51_65.56.pth"
    assert presets.preset_url("hmdb51", "file:///x/y.pth") == "file:///x/y.pth"


@pytest.fixture
def mirror(parity_dir, tmp_path):
    """A local folder holding the fixture under the kinetics400 release name."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(parity_dir / FIXTURE, folder / presets.PRESETS["kinetics400"]["file"])
    return folder


def test_resolve_through_url_prefix_then_cache(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(presets.URL_PREFIX_ENV, mirror.as_uri())
    cache = tmp_path / "cache"
    path = presets.resolve_preset("kinetics400", cache_dir=cache)
    assert path == str(cache / "squeezetime" / "SqueezeTime_K400_71.64.pth")
    assert open(path, "rb").read() == (mirror / "SqueezeTime_K400_71.64.pth").read_bytes()
    assert inspect_checkpoint(path).num_classes == 10

    # Cached: the source is gone and the file is still resolved.
    shutil.rmtree(mirror)
    assert presets.resolve_preset("kinetics400", cache_dir=cache) == path


def test_resolve_through_url_override(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(presets.URL_PREFIX_ENV, "file:///nonexistent-mirror")
    source = mirror / "SqueezeTime_K400_71.64.pth"
    path = presets.resolve_preset(
        "kinetics400", cache_dir=tmp_path / "cache", url_override=source.as_uri()
    )
    assert path.startswith(str(tmp_path / "cache"))
    assert open(path, "rb").read() == source.read_bytes()


def test_missing_mirror_file_fails_without_leaving_a_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(presets.URL_PREFIX_ENV, (tmp_path / "empty").as_uri())
    cache = tmp_path / "cache"
    with pytest.raises(Exception, match="SqueezeTime_HMDB51_65.56.pth"):
        presets.resolve_preset("hmdb51", cache_dir=cache)
    assert not (cache / "squeezetime" / "SqueezeTime_HMDB51_65.56.pth").exists()
