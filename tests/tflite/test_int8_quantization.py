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
    from keras_squeezetime.tflite.int8_quantization import _matches

    assert {i for i, name in enumerate(NAMES) if _matches(name, layer)} == expected


def test_export_keeps_named_stage_float_and_rejects_unknown_names(tmp_path):
    from keras_squeezetime import SqueezeTime, fold_batch_norm
    from keras_squeezetime.tflite.export import export_tflite

    keras.utils.set_random_seed(0)
    model = fold_batch_norm(SqueezeTime(input_shape=(2, 32, 32, 3), num_classes=3,
                                        width_multiplier=0.25, pos_embed_sizes=(8, 4, 2, 1)))
    clips = np.random.default_rng(0).uniform(0, 255, (8, 2, 32, 32, 3)).astype(np.float32)
    results = {
        weights: export_tflite(model, tmp_path / f"{weights}.tflite", "int8", "uint8", clips,
                               float_layers=["stage4"], float_layers_weights=weights)
        for weights in ("float32", "int8")
    }
    for result in results.values():
        assert result.float_ops and all("stage4_block" in op for op in result.float_ops)
        assert any("stage4_block3" in op for op in result.float_ops)
    # Hybrid fallback: the float stage-4 convolutions read int8 kernels; smaller file,
    # nearly the same outputs, and XNNPACK still runs every op but the int8 softmax.
    from keras_squeezetime.tflite import compat
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    def conv_kernels(path):
        model = LiteRTModel(path)
        details = {t["index"]: t for t in model.interpreter.get_tensor_details()}
        return {details[op["inputs"][1]]["dtype"] for op in compat.ops_details(model.interpreter)
                if op["op_name"] == "CONV_2D" and details[op["inputs"][0]]["dtype"] == np.float32}

    assert conv_kernels(results["float32"].path) == {np.float32}
    assert conv_kernels(results["int8"].path) == {np.int8}
    assert results["int8"].size_bytes < results["float32"].size_bytes
    hybrid, full_float = (LiteRTModel(results[w].path) for w in ("int8", "float32"))
    assert hybrid.delegation()["ops_outside"] == {"SOFTMAX": 1}
    a, b = hybrid.scores(clips[:4]), full_float.scores(clips[:4])
    cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99, cosine
    with pytest.raises(ValueError, match="stage9"):
        export_tflite(model, tmp_path / "bad.tflite", "int8", "uint8", clips,
                      float_layers=["stage9"])
    assert not (tmp_path / "bad.tflite").exists()
