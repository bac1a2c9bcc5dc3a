"""The layer-name contract and stage layout, checked against a built model."""

from __future__ import annotations

import pytest

from keras_squeezetime import SqueezeTime, architecture as arch, fold_batch_norm


@pytest.fixture(scope="module")
def model():
    return SqueezeTime(input_shape=(2, 97, 131, 3), width_multiplier=0.25, num_classes=3)


def test_every_named_layer_and_block_exists(model):
    names = {layer.name for layer in model.layers}
    assert {arch.INPUT_NAME, arch.NORMALIZATION, arch.SQUEEZE, arch.STEM_PAD, arch.STEM_CONV,
            arch.STEM_BN, arch.STEM_RELU, arch.POOL_PAD, arch.POOL, arch.HEAD} <= names
    assert [n for n in (layer.name for layer in model.layers) if "_block" in n] == arch.block_names()
    assert len(arch.block_names()) == sum(arch.STAGE_BLOCKS) == 16
    assert arch.LAST_BLOCK == "stage4_block3" and arch.stage_block_names(2) == [
        "stage2_block1", "stage2_block2", "stage2_block3", "stage2_block4"]
    assert all(v.path.startswith(arch.HEAD_PREFIX) == (v.path.split("/")[0] == arch.HEAD)
               for v in model.weights)
    assert arch.STEM_BIAS in {layer.name for layer in fold_batch_norm(model).layers}


def test_feature_map_sizes_follow_the_official_rounding(model):
    # 97: stem and pool round up (49, 25), the 2x2 downsampling rounds down (12, 6, 3).
    assert arch.feature_map_sizes(97) == (49, 25, 25, 12, 6, 3)
    assert arch.feature_map_sizes(224) == (112, 56, 56, 28, 14, 7)
    assert arch.feature_map_sizes(286) == (143, 72, 72, 36, 18, 9)
    stem = model.get_layer(arch.STEM_CONV).output.shape[1:3]
    blocks = [model.get_layer(arch.stage_block_names(s)[-1]).output.shape[1:3]
              for s in range(1, 5)]
    heights = arch.feature_map_sizes(97)
    widths = arch.feature_map_sizes(131)
    assert tuple(stem) == (heights[0], widths[0])
    assert [tuple(b) for b in blocks] == list(zip(heights[2:], widths[2:]))
    assert arch.MIN_INPUT_SIZE == 29 and arch.feature_map_sizes(28)[-1] == 0


@pytest.mark.parametrize("path,group", [
    ("stem_conv/kernel", "stem"), ("normalization", "stem"), ("stem_bias/bias", "stem"),
    ("stage1_block1/ctl/ioi/gate_conv3", "stage1"), ("stage4_block3", "stage4"),
    ("head/fc/kernel", "head"),
])
def test_layer_groups(path, group):
    assert arch.layer_group(path) == group


def test_unknown_layer_path_is_an_error():
    with pytest.raises(ValueError, match="'stage5_block1/conv1' is not a SqueezeTime layer"):
        arch.layer_group("stage5_block1/conv1")
