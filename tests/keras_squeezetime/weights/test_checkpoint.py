"""State-dict normalisation and configuration inference on the official checkpoint layout."""

from __future__ import annotations

import numpy as np
import pytest

from keras_squeezetime.weights.checkpoint import (
    CheckpointConfig,
    inspect_checkpoint,
    load_state_dict,
    normalize_state_dict,
)

FIXTURE = "squeezetime_w0.25_f16_112px.pth"


def _official_layout(parity_dir) -> dict[str, np.ndarray]:
    """The K400 key list as zero-cost arrays of the official shapes (width 1.0, 400 classes)."""
    state = {}
    for line in (parity_dir / "official_k400_checkpoint_keys.txt").read_text().splitlines():
        name, shape = line.split(" ", 1)
        dims = tuple(int(d) for d in shape.strip("()").replace(" ", "").split(",") if d)
        state[name] = np.broadcast_to(np.float32(0), dims)
    return state


def _at_width(key: str, shape: tuple, width: float, classes: int) -> tuple:
    """An official (width 1) shape at another width and class count.

    Kernel axes, the positional embedding, the IOI module's constant 16 channels,
    depthwise conv's 1 and the stem's 3*frames inputs do not scale.
    """
    if key.endswith("pos_embed"):
        return shape
    if key.startswith("fc."):
        return (classes,) + tuple(int(d * width) for d in shape[1:])
    channels = tuple(d if d in (1, 16) or (key == "conv1.weight" and i == 1) else int(d * width)
                     for i, d in enumerate(shape[:2]))
    return channels + shape[2:]


def test_fixture_matches_the_official_key_list(parity_dir):
    fixture = load_state_dict(parity_dir / FIXTURE)
    official = normalize_state_dict({"state_dict": _official_layout(parity_dir)})
    assert len(official) == 653  # 757 minus 104 num_batches_tracked
    assert list(fixture) == list(official)
    for key, value in official.items():
        assert fixture[key].shape == _at_width(key, value.shape, 0.25, 10), key
    assert "conv1.weight" in fixture and "fc.weight" in fixture
    assert not any(k.startswith(("backbone", "cls_head")) or "num_batches" in k for k in fixture)


def test_inspect_fixture(parity_dir):
    config = inspect_checkpoint(parity_dir / FIXTURE)
    assert config == CheckpointConfig(
        width_multiplier=0.25, frames=16, num_classes=10, pos_embed_sizes=(56, 28, 14, 7),
        stage_blocks=(3, 4, 6, 3), depth=50, has_head=True,
    )
    assert config.builder_kwargs() == {
        "width_multiplier": 0.25, "pos_embed_sizes": (56, 28, 14, 7),
        "include_top": True, "num_classes": 10,
    }


def test_inspect_official_layout_and_backbone_only(parity_dir):
    official = _official_layout(parity_dir)
    config = inspect_checkpoint({"state_dict": official})
    assert (config.width_multiplier, config.frames, config.num_classes) == (1.0, 16, 400)
    assert config.pos_embed_sizes == (56, 28, 14, 7) and config.depth == 50

    backbone = {k: v for k, v in official.items() if not k.startswith("cls_head")}
    config = inspect_checkpoint(backbone)
    assert config.num_classes is None and not config.has_head
    assert "num_classes" not in config.builder_kwargs()


@pytest.mark.parametrize("width", [0.3, 0.7, 1.1])
def test_the_width_comes_from_the_last_stage_not_the_stem(parity_dir, width):
    """Stem rows / 64 would say 0.296875 for 0.3 (19 rows), and a model built at that width
    has 152 stage-4 planes where the checkpoint has 153."""
    state = {key: np.broadcast_to(np.float32(0), _at_width(key, value.shape, width, 5))
             for key, value in normalize_state_dict(
                 {"state_dict": _official_layout(parity_dir)}).items()}
    config = inspect_checkpoint(state)
    assert config.width_multiplier == width and config.frames == 16
    assert config.num_classes == 5


def test_non_squeezetime_state_dict_is_rejected():
    resnet = {"conv1.weight": np.zeros((64, 3, 7, 7)), "layer1.0.conv2.weight": np.zeros(1)}
    with pytest.raises(ValueError, match=r"not look like a SqueezeTime.*spatial_conv\.pos_embed"):
        inspect_checkpoint(resnet)


def test_bad_stem_is_rejected(parity_dir):
    state = load_state_dict(parity_dir / FIXTURE)
    state["conv1.weight"] = np.zeros((16, 47, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"conv1\.weight.*3 \* frames"):
        inspect_checkpoint(state)


def test_normalisation_of_wrappers():
    w, b = np.ones((2, 3), np.float32), np.zeros(2, np.float32)
    counter = np.array(5, np.int64)
    expected = {"layer1.0.conv1.weight": w, "fc.bias": b}
    variants = [
        {"state_dict": {"backbone.net.layer1.0.conv1.weight": w, "cls_head.fc_cls.bias": b,
                        "backbone.net.bn1.num_batches_tracked": counter}, "meta": {"epoch": 1}},
        {"model": {"module.net.layer1.0.conv1.weight": w, "module.fc.bias": b}},
        {"module.module.layer1.0.conv1.weight": w, "fc.bias": b},
        expected,
    ]
    for variant in variants:
        out = normalize_state_dict(variant)
        assert out.keys() == expected.keys()
        assert all(out[k] is expected[k] for k in expected)


def test_unknown_prefixes_are_kept_for_the_loader_to_name():
    out = normalize_state_dict({"data_preprocessor.mean": np.zeros(3)})
    assert list(out) == ["data_preprocessor.mean"]


def test_colliding_keys_are_rejected():
    with pytest.raises(ValueError, match=r"both map to 'conv1\.weight'"):
        normalize_state_dict({"module.conv1.weight": np.zeros(1), "conv1.weight": np.zeros(1)})


def test_checkpoint_without_state_dict_is_rejected():
    with pytest.raises(ValueError, match=r"run\.pth holds no state dict.*'epoch'"):
        normalize_state_dict({"epoch": 3, "meta": {}}, source="run.pth")
    with pytest.raises(ValueError, match="list"):
        normalize_state_dict([np.zeros(1)], source="run.pth")
