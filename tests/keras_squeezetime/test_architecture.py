"""The layer-name contract and stage layout, checked against a built model."""

from __future__ import annotations

import numpy as np
import pytest

from keras_squeezetime import SqueezeTime, architecture as arch, fold_batch_norm


@pytest.fixture(scope="module")
def model():
    return SqueezeTime(input_shape=(2, 97, 131, 3), width_multiplier=0.25, num_classes=3)


def test_every_named_layer_and_block_exists(model):
    names = {layer.name for layer in model.layers}
    assert {arch.INPUT_NAME, arch.NORMALIZATION, arch.SQUEEZE, arch.STEM_PAD, arch.STEM_CONV,
            arch.STEM_BN, arch.STEM_RELU, arch.POOL_PAD, arch.POOL, arch.HEAD} <= names
    assert ([n for n in (layer.name for layer in model.layers) if "_block" in n]
            == arch.block_names())
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


@pytest.mark.parametrize("width", [0.25, 0.3, 0.5, 0.7, 0.75, 1.0, 1.1, 1.25, 2.0])
def test_the_width_multiplier_comes_back_from_the_last_stage(width):
    """The stem's 64 x w rounds too coarsely (0.3 -> 19 -> 0.296875, which builds stage 4
    with 152 planes instead of 153); the last stage's planes give the multiplier back."""
    planes = arch.scaled_channels(arch.STAGE_PLANES[-1], width)
    assert arch.width_multiplier_of(planes) == width


def test_any_width_is_rebuilt_alike_from_its_last_stage():
    widths = np.random.default_rng(0).uniform(1 / 64, 3, 2000).tolist() + [0.296875, 0.0625]
    for width in widths:
        back = arch.width_multiplier_of(arch.scaled_channels(arch.STAGE_PLANES[-1], width))
        for channels in (arch.STEM_CHANNELS, *arch.STAGE_PLANES):
            assert arch.scaled_channels(channels, back) == arch.scaled_channels(channels, width)
    # The stem alone names the simplest width of its (coarser) range, for messages.
    assert arch.width_multiplier_of(19, arch.STEM_CHANNELS) == 0.3
    assert arch.width_multiplier_of(16, arch.STEM_CHANNELS) == 0.25
    with pytest.raises(ValueError, match="channels must be a positive integer; got 0"):
        arch.width_multiplier_of(0)


def test_frames_of_the_stem():
    assert arch.frames_of_stem(48) == 16 and arch.frames_of_stem(3) == 1
    for channels in (47, 0):
        with pytest.raises(ValueError, match=f"3 x frames input channels; got {channels}"):
            arch.frames_of_stem(channels)
