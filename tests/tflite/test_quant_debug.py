"""Selective float fallback: which tensors `--float-layers` keeps in float."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

NAMES = [
    "squeezetime_1/stem_conv_1/convolution",
    "squeezetime_1/stem_bias_1/add",
    "squeezetime_1/stage1_block1_1/ctl_1/ioi_1/gate_conv3_1/convolution",
    "squeezetime_1/stage1_block3_1/conv1_1/convolution",
    "squeezetime_1/stage12_block1_1/conv1_1/convolution",  # not stage 1
    "squeezetime_1/stage2_block1_1/ctl_1/ioi_1/gate_conv3_1/convolution",
]


@pytest.mark.parametrize("layer, expected", [
    ("stage1", {2, 3}),
    ("stage1_block3", {3}),
    ("stem", {0, 1}),
    ("ioi/gate_conv3", {2, 5}),
    ("stage2_block1/ctl/ioi", {5}),
    ("stage1/ctl", {2}),  # the CTL module of every stage-1 block
    ("gate", {2, 5}),  # group prefix: gate_conv1..3
    ("stage", set()),  # a prefix ends at an underscore: not stage1_...

])
def test_layer_paths_and_group_prefixes(layer, expected):
    from keras_squeezetime.tflite.quant_debug import _matches

    assert {i for i, name in enumerate(NAMES) if _matches(name, layer)} == expected


def test_export_keeps_named_stage_float_and_rejects_unknown_names(tmp_path):
    from keras_squeezetime import SqueezeTime, fold_batch_norm
    from keras_squeezetime.tflite.convert import export_tflite

    keras.utils.set_random_seed(0)
    model = fold_batch_norm(SqueezeTime(input_shape=(2, 32, 32, 3), num_classes=3,
                                        width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1)))
    clips = np.random.default_rng(0).uniform(0, 255, (8, 2, 32, 32, 3)).astype(np.float32)
    result = export_tflite(model, tmp_path / "m.tflite", "int8", "uint8", clips,
                           float_layers=["stage4"])
    assert result.float_ops and all("stage4_block" in op for op in result.float_ops)
    assert any("stage4_block3" in op for op in result.float_ops)
    with pytest.raises(ValueError, match="stage9"):
        export_tflite(model, tmp_path / "bad.tflite", "int8", "uint8", clips,
                      float_layers=["stage9"])
    assert not (tmp_path / "bad.tflite").exists()
