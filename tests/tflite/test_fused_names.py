"""Fused tensor names: the paths that locate an op, not a merged constant's from elsewhere."""

from __future__ import annotations

# A stage-4 gate convolution fused with its batch norm and ReLU; the converter merged its
# batch-norm scale with an equal constant of stage 1, whose name rides along.
GATE = ("squeezetime_1/stage4_block3_1/ctl_1/ioi_1/Relu;"
        "squeezetime_1/stage4_block3_1/ctl_1/ioi_1/gate_bn1_1/batchnorm/mul_1;"
        "squeezetime_1/stage4_block3_1/ctl_1/ioi_1/gate_conv1_1/BiasAdd;"
        "squeezetime_1/stage1_block1_1/bn1_1/batchnorm/Rsqrt;"
        "squeezetime_1/stage4_block3_1/ctl_1/ioi_1/gate_conv1_1/convolution")
STEM = "squeezetime_1/stem_relu_1/Relu;squeezetime_1/stem_conv_1/convolution"
HEAD = "squeezetime_1/head_1/fc_1/MatMul;squeezetime_1/stage2_block1_1/bn3_1/batchnorm/Rsqrt"


def test_op_paths_drop_constants_of_other_blocks():
    from keras_squeezetime.tflite.fused_names import op_paths

    paths = op_paths(GATE)
    assert len(paths) == 4 and not any("stage1" in p for p in paths)
    assert op_paths(STEM) == STEM.split(";")  # both stem layers locate the stem op
    assert op_paths(HEAD) == ["squeezetime_1/head_1/fc_1/MatMul"]
    assert op_paths("a;;b") == ["a", "b"] and op_paths("") == []


def test_float_layers_and_units_ignore_the_merged_constant():
    from keras_squeezetime.tflite.int8_agreement import unit_of
    from keras_squeezetime.tflite.int8_quantization import _matches
    from keras_squeezetime.tflite.op_profile import group_of_tensor

    assert not _matches(GATE, "stage1") and not _matches(GATE, "stage1_block1/bn1")
    assert _matches(GATE, "stage4_block3/ctl/ioi/gate_conv1") and _matches(GATE, "ioi/gate_bn1")
    assert _matches(STEM, "stem_conv") and _matches(STEM, "stem_relu")
    assert unit_of(GATE) == "stage4_block3" and unit_of(HEAD) == "head"
    assert group_of_tensor(GATE) == "stage4" and group_of_tensor(HEAD) == "head"
