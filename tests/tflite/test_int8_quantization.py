"""Selective float fallback: which tensors `--float-layers` keeps in float."""

from __future__ import annotations

import numpy as np
import pytest


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


def test_export_keeps_named_stage_float_and_rejects_unknown_names(tiny, tmp_path):
    """Stage 4 kept float, with float32 or int8 (hybrid) kernels, on the suite's
    discriminating tiny model (conftest): the hybrid file must give each clip the float32
    kernels file's answer, so a garbled int8 kernel or a stage that ignored its input fails."""
    from keras_squeezetime.tflite.export import export_tflite

    model = tiny.folded
    clips, _ = tiny.clips(8, seed=21)
    held_out, _ = tiny.clips(20, seed=22)  # four per class
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
    reference = full_float.scores(held_out)  # logits
    assert tiny.discriminates(reference), reference.argmax(1)  # so agreeing means something
    scores = hybrid.scores(held_out)
    # Both files are int8 but for stage 4 and give int8-rounded logits (steps of ~0.04):
    # measured 0.38 apart at most (7 % of the largest logit) and the same top class on all
    # 20 clips; the bound is twice that, and a top class may flip on a clip whose margin is
    # that small (2 of 10 clips of another draw had margins of 0.2-0.4).
    np.testing.assert_allclose(scores, reference, atol=0.15 * np.abs(reference).max())
    assert np.mean(scores.argmax(1) == reference.argmax(1)) >= 0.9, (scores.argmax(1),
                                                                     reference.argmax(1))
    with pytest.raises(ValueError, match="stage9"):
        export_tflite(model, tmp_path / "bad.tflite", "int8", "uint8", clips,
                      float_layers=["stage9"])
    assert not (tmp_path / "bad.tflite").exists()
