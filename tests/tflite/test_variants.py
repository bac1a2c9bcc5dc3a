"""`squeezetime-export`'s library: variant lists, file names, and one variant from each
model kind."""

from __future__ import annotations

import numpy as np
import pytest


def test_parse_quantizations():
    from keras_squeezetime.tflite.export import QUANTIZATIONS
    from keras_squeezetime.tflite.variants import parse_quantizations

    assert parse_quantizations("int8") == ["int8"]
    assert parse_quantizations("int8, float32,int8") == ["int8", "float32"]
    assert parse_quantizations("all") == list(QUANTIZATIONS)
    assert "float16-compute" in parse_quantizations("all")
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        parse_quantizations("float32,int4")


def test_variant_file_names(tmp_path):
    from keras_squeezetime.tflite.variants import variant_file_name

    assert variant_file_name("run/m.keras", "int8", "uint8") == "m_int8_uint8in.tflite"
    assert variant_file_name("run/m.weights.h5", "float32", "float32", "stacked") == \
        "m_float32_stacked.tflite"
    assert variant_file_name(str(tmp_path), "float16-compute", "uint8", "stacked") == \
        "model_float16-compute_uint8in_stacked.tflite"


def test_request_checks():
    from keras_squeezetime.tflite.variants import ExportRequest

    with pytest.raises(ValueError, match="int8 needs --representative-data"):
        ExportRequest("m.keras").check(["float32", "int8"])
    with pytest.raises(ValueError, match="apply to int8 only"):
        ExportRequest("m.keras", integer_output=True).check(["float32"])
    ExportRequest("m.keras", representative_data="x.txt").check(["int8"])
    agreeing = ExportRequest("m.keras", representative_data="x.txt", target_agreement=0.98)
    agreeing.check(["int8"])
    with pytest.raises(ValueError, match="--target-agreement applies to int8 without"):
        agreeing.check(["float16"])
    with pytest.raises(ValueError, match="--target-agreement applies to int8 without"):
        ExportRequest("m.keras", representative_data="x.txt", target_agreement=0.98,
                      float_layers=("stem",)).check(["int8"])
    for target in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"must be in \(0, 1\]; got"):
            ExportRequest("m.keras", representative_data="x.txt",
                          target_agreement=target).check(["int8"])
    with pytest.raises(ValueError, match="--agreement-data measures --target-agreement"):
        ExportRequest("m.keras", representative_data="x.txt",
                      agreement_data="held.txt").check(["int8"])
    # Several variants: the int8 options concern the int8 file alone.
    several = ExportRequest("m.keras", representative_data="x.txt", integer_output=True,
                            target_agreement=0.98, agreement_data="held.txt")
    several.check(["float16", "int8"])
    assert several.for_variant("int8") == several
    float16 = several.for_variant("float16")
    float16.check(["float16"])
    assert (float16.integer_output, float16.target_agreement, float16.agreement_data) == \
        (False, None, None)
    layers = ExportRequest("m.keras", representative_data="x.txt", float_layers=("stem",))
    assert layers.for_variant("float32").float_layers == ()


@pytest.mark.parametrize("source, fold", [("model.keras", True), ("model.weights.h5", False)])
def test_one_variant_from_a_run_folder(tiny, run_dir, tmp_path, source, fold):
    """From `.keras` and from `.weights.h5` + config.json, folded or not (`--nofold-batch-norm`):
    the Keras model's logits."""
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.variants import ExportRequest, export_variant

    # The int8 options of a several-variant command do not concern this float32 file.
    request = ExportRequest(str(run_dir / source), input_layout="stacked", fold_batch_norm=fold,
                            float_layers=("stem",), integer_output=True)
    summary = export_variant(request, "float32", str(tmp_path / "m.tflite"))
    assert summary["input_shape"] == [1, tiny.SIZE, tiny.SIZE, 3 * tiny.FRAMES]
    assert summary["labels"].endswith("m.labels.txt")
    # Folding moves the pixel normalisation's SUB, and 17 MULs the converter does not
    # fold by itself, into the convolutions (it folds the other BNs either way).
    assert ("SUB" in summary["ops"]) == (not fold)
    assert summary["ops"]["MUL"] == (32 if fold else 49), summary["ops"]
    model = LiteRTModel(summary["output"], threads=1)
    assert model.labels == tiny.NAMES and model.config["frame_interval"] == 2
    clips, _ = tiny.clips(6, seed=21)
    expected = tiny.logits(tiny.model, clips)
    np.testing.assert_allclose(model.scores(clips), expected, rtol=0, atol=1e-4)


def test_model_errors_before_loading(tmp_path):
    from keras_squeezetime.tflite.variants import check_model

    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model(str(tmp_path / "missing.weights.h5"))
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(ValueError, match="already a LiteRT model"):
        check_model(str(tmp_path / "m.tflite"))
