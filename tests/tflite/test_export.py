"""`export_tflite` on a tiny SqueezeTime that discriminates, run by the real LiteRT runtimes.

Every variant is compared with float32 on held-out clips of the discriminating model
(tests/tflite/conftest.py), with bounds set from the measured error and a margin, so a
conversion that ignored its input or scrambled the channel order fails.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import keras

# (quantization, input type, layout) exported once for this module.
VARIANTS = [
    ("float32", "float32", "frames"), ("float32", "float32", "stacked"),
    ("float32", "uint8", "stacked"), ("float16", "float32", "stacked"),
    ("float16-compute", "float32", "stacked"), ("dynamic", "float32", "stacked"),
    ("int8", "uint8", "frames"), ("int8", "uint8", "stacked"),
]


def _name(variant):
    return "_".join(variant)


@pytest.fixture(scope="module")
def exports(tiny, tmp_path_factory):
    """`{variant name: ExportResult}` of `VARIANTS`, from the folded model."""
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("exports")
    calibration, _ = tiny.clips(40, seed=11)
    results = {}
    for quantization, input_type, layout in VARIANTS:
        results[_name((quantization, input_type, layout))] = export_tflite(
            tiny.folded, folder / f"{_name((quantization, input_type, layout))}.tflite",
            quantization, input_type, calibration if quantization == "int8" else None,
            class_names=tiny.NAMES, sampling={"frame_interval": 2, "short_side": tiny.SIZE},
            input_layout=layout)
    return results


@pytest.fixture(scope="module")
def held_out(tiny):
    """20 held-out clips (integer pixels) and the Keras model's logits for them."""
    clips, _ = tiny.clips(20, seed=5)
    logits = tiny.logits(tiny.folded, clips)
    assert tiny.discriminates(logits)
    return clips, logits


def _scores(path, clips):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    return LiteRTModel(path, threads=1).scores(clips)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_float32_matches_keras_in_both_layouts(exports, held_out):
    clips, expected = held_out
    frames = _scores(exports["float32_float32_frames"].path, clips)
    stacked = _scores(exports["float32_float32_stacked"].path, clips)
    stacked_uint8 = _scores(exports["float32_uint8_stacked"].path, clips)
    # Measured 3e-5 (logit std ~2 across clips): float32 summation order only.
    np.testing.assert_allclose(frames, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(stacked, expected, rtol=0, atol=1e-4)
    # Fed the same frames, both layouts give the same probabilities (measured 5e-6).
    np.testing.assert_allclose(_softmax(stacked), _softmax(frames), rtol=0, atol=1e-5)
    # Integer pixels: the uint8 input is exact.
    np.testing.assert_allclose(_softmax(stacked_uint8), _softmax(stacked), rtol=0, atol=1e-6)


def test_stacked_graphs_have_no_tensor_above_rank_4(exports):
    from keras_squeezetime.tflite.model_ops import max_tensor_rank

    ranks = {name: max_tensor_rank(open(result.path, "rb").read())
             for name, result in exports.items()}
    assert all(rank <= 4 for name, rank in ranks.items() if name.endswith("stacked")), ranks
    assert ranks["float32_float32_frames"] == 5 and ranks["int8_uint8_frames"] == 5
    # The squeeze's TRANSPOSE is gone: its channel order is in the stem kernel.
    assert "TRANSPOSE" in exports["float32_float32_frames"].ops
    assert not any("TRANSPOSE" in exports[name].ops for name in exports if name.endswith("stacked"))
    for name, result in exports.items():
        assert result.input_layout == name.rsplit("_", 1)[1]
        assert len(result.input_shape) == (4 if result.input_layout == "stacked" else 5)


# Bounds against float32 on 20 held-out clips (logit std ~2), from measured values with
# margin. Measured: float16 weights agreement 1.0, max |logit error| 0.02; dynamic 1.0,
# mean cosine 0.994; int8 1.0, 0.988. An int8 file calibrated on black clips: 0.10, 0.007.
BOUNDS = {  # quantization: (min top-1 agreement, min mean cosine, max |logit error| or None)
    "float16": (0.95, 0.9999, 0.1),
    "float16-compute": (0.95, 0.9999, 0.1),
    "dynamic": (0.9, 0.97, None),
    "int8": (0.85, 0.95, None),
}


@pytest.mark.parametrize("name", ["float16_float32_stacked", "float16-compute_float32_stacked",
                                  "dynamic_float32_stacked", "int8_uint8_stacked",
                                  "int8_uint8_frames"])
def test_quantized_variants_agree_with_float32(exports, held_out, name):
    from keras_squeezetime.tflite.report import quality_metrics

    clips, _ = held_out
    reference = _scores(exports["float32_float32_stacked"].path, clips)
    metrics = quality_metrics(_scores(exports[name].path, clips), np.zeros(len(clips), int),
                              reference)
    min_agreement, min_cosine, max_error = BOUNDS[name.split("_")[0]]
    assert metrics["agreement_top1"] >= min_agreement, metrics
    assert metrics["logit_cosine"] >= min_cosine, metrics
    if max_error is not None:
        assert metrics["logit_max_abs_error"] <= max_error, metrics


def test_int8_uint8_input_file(exports):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    int8, fp32 = exports["int8_uint8_stacked"], exports["float32_float32_stacked"]
    model = LiteRTModel(int8.path, threads=1)
    assert model.input_dtype == np.uint8 and model.input_layout == "stacked"
    assert int8.size_bytes <= 0.3 * fp32.size_bytes + 20_000  # + metadata overhead
    # Raw pixel bytes are the quantised input (scale 1, zero point 0): no float cast left.
    assert tuple(model.input_detail["quantization"]) == (1.0, 0)
    assert int8.float_ops == () and "CAST" not in int8.ops


def test_metadata_records_layout_labels_and_fp16_accumulation(exports, tiny):
    from keras_squeezetime.tflite import compat, flatbuffer, metadata
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    result = exports["float32_float32_stacked"]
    labels, config = metadata.read_metadata(open(result.path, "rb").read())
    assert labels == tiny.NAMES
    assert config["input_layout"] == "stacked" and config["quantization"] == "float32"
    assert config["frame_interval"] == 2
    model = LiteRTModel(result.path, threads=1)
    assert model.labels == tiny.NAMES and model.config == config
    assert model.input_shape == (1, tiny.FRAMES, tiny.SIZE, tiny.SIZE, 3)
    assert model.input_tensor_shape == (1, tiny.SIZE, tiny.SIZE, 3 * tiny.FRAMES)
    with open(result.labels_path) as handle:
        assert handle.read().split() == tiny.NAMES
    # The labels ship with the model: same permissions as the .tflite (not mkstemp's 0600).
    assert os.stat(result.labels_path).st_mode & 0o777 == os.stat(result.path).st_mode & 0o777
    assert not any(op.startswith(("FLEX", "CUSTOM")) for op in result.ops)
    key = compat.REDUCED_PRECISION_KEY
    precision = {name: flatbuffer.read_metadata(open(exports[name].path, "rb").read(), [key])
                 for name in ("float16_float32_stacked", "float16-compute_float32_stacked")}
    assert precision["float16-compute_float32_stacked"] == {key: b"fp16accfp16"}
    assert precision["float16_float32_stacked"] == {key: b"fp16accfp32"}


def test_signature_and_shape_errors(exports, tiny, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite.interpreter import LiteRTModel, NotTFLiteError

    interpreter = Interpreter(model_path=exports["float32_float32_frames"].path)
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == ["video"]
    assert set(signature["outputs"]) == {"probabilities", "logits"}
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(NotTFLiteError, match="not a LiteRT/TFLite model"):
        LiteRTModel(fake)
    model = LiteRTModel(exports["float32_float32_stacked"].path, threads=1)
    with pytest.raises(ValueError, match=r"do not match the input \(4, 64, 64, 3\)"):
        model.run(np.zeros((8, tiny.SIZE, tiny.SIZE, 3), np.float32))


def test_representative_shape_mismatch_leaves_nothing(tiny, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite

    wrong = np.zeros((8, tiny.FRAMES * 2, tiny.SIZE, tiny.SIZE, 3), np.float32)
    with pytest.raises(ValueError, match=r"does not match the model input"):
        export_tflite(tiny.folded, tmp_path / "x.tflite", "int8", representative_dataset=wrong)
    assert os.listdir(tmp_path) == []


def test_int8_without_data_and_bad_options(tiny, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite

    with pytest.raises(ValueError, match="representative_dataset"):
        export_tflite(tiny.folded, tmp_path / "x.tflite", "int8")
    with pytest.raises(ValueError, match="quantization must be one of"):
        export_tflite(tiny.folded, tmp_path / "x.tflite", "int4")
    with pytest.raises(ValueError, match="3 class names"):
        export_tflite(tiny.folded, tmp_path / "x.tflite", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="input_layout must be one of"):
        export_tflite(tiny.folded, tmp_path / "x.tflite", input_layout="nchw")
    assert os.listdir(tmp_path) == []


def test_existing_folder_as_output_is_refused_before_any_work(tiny, tmp_path):
    """A folder named as the output file is a ValueError naming it; nothing is written."""
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path / "q"
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"Output {folder} is an existing folder; name the "
                                         r"\.tflite file to write"):
        export_tflite(tiny.folded, folder, class_names=tiny.NAMES)
    assert os.listdir(tmp_path) == ["q"] and os.listdir(folder) == []
    # The labels file's path taken by a folder is refused the same way.
    (tmp_path / "m.labels.txt").mkdir()
    with pytest.raises(ValueError, match=r"m\.labels\.txt of output .*m\.tflite is an existing "
                                         "folder"):
        export_tflite(tiny.folded, tmp_path / "m.tflite", class_names=tiny.NAMES)
    assert sorted(os.listdir(tmp_path)) == ["m.labels.txt", "q"]


@pytest.mark.parametrize("failing", ["model", "labels"])
def test_failed_move_into_place_leaves_no_model_and_no_labels(
        tiny, tmp_path, monkeypatch, failing):
    """The model is moved into place first and the labels after it: whichever move fails,
    no labels file stands beside a missing model, and no model without its labels."""
    from keras_squeezetime.tflite import export

    output = tmp_path / "m.tflite"
    target = str(output) if failing == "model" else str(tmp_path / "m.labels.txt")
    replace = os.replace

    def failing_replace(source, destination):
        if os.fspath(destination) == target:
            raise OSError(f"simulated failure moving onto {destination}")
        replace(source, destination)

    monkeypatch.setattr(export.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated failure"):
        export.export_tflite(tiny.folded, output, class_names=tiny.NAMES)
    assert os.listdir(tmp_path) == []


def test_op_without_builtin_kernel_is_named_not_sent_to_flex():
    """The converter may only use builtins: an op that would need Flex fails, naming the op."""
    import tensorflow as tf
    from keras_squeezetime.layers import ClassificationHead
    from keras_squeezetime.tflite.export import ServingGraph, UnsupportedOpsError, _convert

    class Inverse(keras.layers.Layer):  # MatrixInverse has no builtin LiteRT kernel
        def call(self, x):
            return tf.linalg.inv(x + 4.0 * tf.eye(4))

    inputs = keras.Input((4, 4, 1), batch_size=1)
    x = keras.layers.Reshape((4, 4, 1))(Inverse()(keras.layers.Reshape((4, 4))(inputs)))
    model = keras.Model(inputs, ClassificationHead(3)(x))
    with pytest.raises(UnsupportedOpsError, match="MatrixInverse"):
        _convert(ServingGraph(model, (1, 4, 4, 1), "float32"), "float32", "float32", None,
                 False, ())


def test_compiled_model_api_gives_the_interpreter_outputs(exports, held_out):
    """Every variant through `CompiledModel` (the API Android apps use) on XNNPACK."""
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    clips, _ = held_out
    for name, result in exports.items():
        model = LiteRTModel(result.path, threads=1)
        compiled = CompiledModelRunner(model, "cpu")
        for clip in clips[:3]:
            expected, got = model.run(clip), compiled.run(clip)
            assert set(got) == set(expected)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name} {key}")


def test_float16_compute_under_fp16_arithmetic(exports, held_out):
    """XNNPACK forced to fp16 arithmetic: close to float32, not equal.

    Measured on these clips: max |logit error| 0.16, mean cosine 0.9994, agreement 1.0
    (fp16 accumulation, AVX512-FP16); 0.03, emulated (fp32 sums, AMD EPYC).
    """
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.report import quality_metrics

    clips, _ = held_out
    model = LiteRTModel(exports["float16-compute_float32_stacked"].path, threads=1)
    fp16 = CompiledModelRunner(model, "cpu", force_fp16=True)
    got = np.stack([fp16.run(clip)["logits"] for clip in clips])
    reference = _scores(exports["float32_float32_stacked"].path, clips)
    metrics = quality_metrics(got, np.zeros(len(clips), int), reference)
    assert metrics["agreement_top1"] >= 0.95 and metrics["logit_cosine"] >= 0.998, metrics
    assert 1e-3 < metrics["logit_max_abs_error"] < 0.6, metrics  # fp16 rounding, not fp32


def test_integer_output(tiny, exports, held_out, tmp_path):
    """`integer_output=True`: int8 `probabilities`/`logits`, dequantised by the runner to the
    float-output file's values within one output quantisation step."""
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    calibration, _ = tiny.clips(40, seed=11)
    result = export_tflite(tiny.folded, tmp_path / "int_out.tflite", "int8", "uint8", calibration,
                           integer_output=True, input_layout="stacked")
    model = LiteRTModel(result.path, threads=1)
    details = model.output_details
    assert {np.dtype(d["dtype"]) for d in details.values()} == {np.dtype(np.int8)}
    clips, _ = held_out
    got = model.scores(clips)
    float_output = _scores(exports["int8_uint8_stacked"].path, clips)
    step = details["logits"]["quantization"][0]
    assert 0 < step < 0.5
    assert np.abs(got - float_output).max() <= step * 0.51 + 1e-6
    np.testing.assert_array_equal(got.argmax(1), float_output.argmax(1))
    probabilities = model.run(clips[0])["probabilities"]
    assert probabilities.dtype == np.float32 and abs(probabilities.sum() - 1) < 0.05


def test_a_model_built_without_normalisation_is_exported_taking_pixels(tiny, tmp_path):
    """Every file takes pixels (the tools and the phone guide feed them): the model built
    with `include_preprocessing=False` gets its normalisation back, folded into the stem
    on the tools' path (`export_variant`), in front of the graph in `export_tflite`."""
    from keras_squeezetime.model_config import ModelConfig, write_model_config
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.variants import ExportRequest, export_variant
    from tests import helpers

    normalised = helpers.tiny_squeezetime(
        input_shape=(tiny.FRAMES, tiny.SIZE, tiny.SIZE, 3), num_classes=tiny.CLASSES,
        include_preprocessing=False)
    for layer in tiny.model.layers:
        if layer.weights:
            normalised.get_layer(layer.name).set_weights(layer.get_weights())
    clips, _ = tiny.clips(12, seed=9)
    # The discriminating model's answers on pixels: what the file must give on pixels.
    expected = tiny.logits(tiny.model, clips)
    assert tiny.discriminates(expected)
    direct = export_tflite(normalised, tmp_path / "direct.tflite", input_layout="stacked")
    normalised.save(tmp_path / "model.keras")
    write_model_config(tmp_path, ModelConfig(
        frames=tiny.FRAMES, frame_interval=2, image_size=tiny.SIZE, short_side=tiny.SIZE,
        num_classes=tiny.CLASSES, width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2),
        include_preprocessing=False))
    tools = export_variant(ExportRequest(str(tmp_path / "model.keras")), "float32",
                           str(tmp_path / "tools.tflite"))
    # Folded: the normalisation went into the stem, no elementwise op on the input.
    assert "SUB" not in tools["ops"] and "SUB" in direct.ops, (tools["ops"], direct.ops)
    for path in (direct.path, tools["output"]):
        np.testing.assert_allclose(_scores(path, clips), expected, rtol=0, atol=1e-4)


def test_a_model_trained_with_mixed_precision_exports_in_float32(tiny, tmp_path):
    """`squeezetime-train --mixed-precision` saves model.keras under mixed_bfloat16; LiteRT
    has no bfloat16 kernels (the export failed naming every op as Flex). The tools load it
    computing in float32 (`model_loading.float32_compute`), with the float32 model's
    answers."""
    from keras_squeezetime.model_config import ModelConfig, write_model_config
    from keras_squeezetime.model_loading import load_model
    from keras_squeezetime.tflite.variants import ExportRequest, export_variant
    from tests import helpers

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = helpers.tiny_squeezetime(
            input_shape=(tiny.FRAMES, tiny.SIZE, tiny.SIZE, 3), num_classes=tiny.CLASSES)
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(tiny.model.get_weights())
    mixed.save(tmp_path / "model.keras")
    write_model_config(tmp_path, ModelConfig(
        frames=tiny.FRAMES, frame_interval=2, image_size=tiny.SIZE, short_side=tiny.SIZE,
        num_classes=tiny.CLASSES, width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2)))
    clips, _ = tiny.clips(12, seed=13)
    expected = tiny.logits(tiny.model, clips)
    assert tiny.discriminates(expected)
    # bfloat16 compute moves the logits far beyond float32 rounding (measured 0.5).
    assert np.abs(tiny.logits(mixed, clips) - expected).max() > 0.05

    loaded = load_model(tmp_path / "model.keras").model
    assert {layer.dtype_policy.name for layer in loaded._flatten_layers()} == {"float32"}
    np.testing.assert_allclose(tiny.logits(loaded, clips), expected, rtol=0, atol=1e-5)
    summary = export_variant(ExportRequest(str(tmp_path / "model.keras")), "float32",
                             str(tmp_path / "model.tflite"))
    np.testing.assert_allclose(_scores(summary["output"], clips), expected, rtol=0, atol=1e-4)
