"""LiteRT export and harness on a tiny real SqueezeTime, run by the real LiteRT interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

FRAMES, SIZE, CLASSES = 4, 64, 5
NAMES = [f"class_{i}" for i in range(CLASSES)]


def _tiny_model(damp_batch_norm):
    from keras_squeezetime import SqueezeTime

    keras.utils.set_random_seed(1)
    model = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                        width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2))
    damp_batch_norm(model, seed=0)
    return model


def _clips(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, FRAMES, SIZE, SIZE, 3)).astype(np.float32)


def _logits(model, clips):
    head = model.get_layer("head")
    activation = head.activation
    head.activation = keras.activations.linear
    try:
        return np.asarray(model(clips, training=False))
    finally:
        head.activation = activation


@pytest.fixture(scope="module")
def model(damp_batch_norm):
    return _tiny_model(damp_batch_norm)


@pytest.fixture(scope="module")
def fp32_export(model, tmp_path_factory):
    from keras_squeezetime.tflite.export import export_tflite

    out = tmp_path_factory.mktemp("fp32") / "model.tflite"
    return export_tflite(model, out, "float32", class_names=NAMES,
                         sampling={"frame_interval": 2, "short_side": SIZE})


def test_fp32_matches_keras_logits(model, fp32_export):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    clips = _clips(3, seed=5)
    expected = _logits(model, clips)
    tflite = LiteRTModel(fp32_export.path, threads=1)
    got = tflite.scores(clips)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4
    probabilities = tflite.run(clips[0])["probabilities"]
    np.testing.assert_allclose(probabilities, np.asarray(model(clips[:1]))[0], atol=1e-5)
    # The user's model is left with its softmax head.
    assert np.allclose(np.asarray(model(clips[:1])).sum(), 1.0, atol=1e-5)


def test_signature_labels_and_metadata(fp32_export):
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite import metadata

    interpreter = Interpreter(model_path=fp32_export.path)
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == ["video"]
    assert set(signature["outputs"]) == {"probabilities", "logits"}
    detail = interpreter.get_signature_runner().get_input_details()["video"]
    assert tuple(detail["shape"]) == (1, FRAMES, SIZE, SIZE, 3)
    labels, config = metadata.read_metadata(open(fp32_export.path, "rb").read())
    assert labels == NAMES
    assert config["frame_interval"] == 2 and config["quantization"] == "float32"
    with open(fp32_export.labels_path) as handle:
        assert handle.read().split() == NAMES
    # The labels ship with the model: same permissions as the .tflite (not mkstemp's 0600).
    assert os.stat(fp32_export.labels_path).st_mode & 0o777 == os.stat(fp32_export.path).st_mode & 0o777
    assert not any(op.startswith(("FLEX", "CUSTOM")) for op in fp32_export.ops)


def test_int8_uint8_input(model, fp32_export, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    result = export_tflite(model, tmp_path / "int8.tflite", "int8", "uint8", _clips(32, seed=1))
    tflite = LiteRTModel(result.path, threads=1)
    assert tflite.input_dtype == np.uint8
    assert result.size_bytes <= 0.3 * fp32_export.size_bytes + 20_000  # + metadata overhead
    # Raw pixel bytes are the quantised input (scale 1, zero point 0): no float cast left.
    assert tuple(tflite.input_detail["quantization"]) == (1.0, 0)
    assert result.float_ops == () and "CAST" not in result.ops
    clips = _clips(4, seed=9)
    expected = _logits(model, clips)
    got = tflite.scores(clips)
    cosine = np.sum(got * expected, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.9  # int8 error, but the same function


def test_representative_shape_mismatch_leaves_nothing(model, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite

    wrong = np.zeros((8, FRAMES * 2, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match=r"does not match the model input"):
        export_tflite(model, tmp_path / "x.tflite", "int8", representative_dataset=wrong)
    assert os.listdir(tmp_path) == []


def test_int8_without_data_and_bad_options(model, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite

    with pytest.raises(ValueError, match="representative_dataset"):
        export_tflite(model, tmp_path / "x.tflite", "int8")
    with pytest.raises(ValueError, match="quantization must be one of"):
        export_tflite(model, tmp_path / "x.tflite", "int4")
    with pytest.raises(ValueError, match="3 class names"):
        export_tflite(model, tmp_path / "x.tflite", class_names=["a", "b", "c"])
    assert os.listdir(tmp_path) == []


def test_not_tflite_and_shape_mismatch(fp32_export, tmp_path):
    from keras_squeezetime.tflite.interpreter import LiteRTModel, NotTFLiteError

    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(NotTFLiteError, match="not a LiteRT/TFLite model"):
        LiteRTModel(fake)
    tflite = LiteRTModel(fp32_export.path, threads=1)
    with pytest.raises(ValueError, match=r"do not match the input \(4, 64, 64, 3\)"):
        tflite.run(np.zeros((8, SIZE, SIZE, 3), np.float32))


def test_calibration_errors(tmp_path):
    from keras_squeezetime.predictor import ClipSettings
    from keras_squeezetime.tflite.calibration import load_clips

    spec = ClipSettings(frames=FRAMES, frame_interval=2, image_size=SIZE, short_side=SIZE)
    with pytest.raises(FileNotFoundError, match="No TFRecord files match"):
        load_clips(str(tmp_path / "nothing-*.tfrecord"), spec)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clips(str(tmp_path / "missing_list.txt"), spec)


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory):
    from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("videos")
    generate_synthetic_dataset(root, 0, 1, num_frames=12, height=SIZE, width=SIZE)
    return root


def test_too_few_calibration_clips(video_dataset):
    from keras_squeezetime.predictor import ClipSettings
    from keras_squeezetime.tflite.calibration import calibration_clips

    spec = ClipSettings(frames=FRAMES, frame_interval=2, image_size=SIZE, short_side=SIZE)
    with pytest.raises(ValueError, match="gives 8 clips; int8 calibration needs at least 32"):
        calibration_clips(str(video_dataset / "val_list.txt"), spec)
    clips = calibration_clips(str(video_dataset / "val_list.txt"), spec, min_clips=8)
    assert clips.shape == (8, FRAMES, SIZE, SIZE, 3) and clips.dtype == np.float32


def _cli(name, *args):
    code = f"from keras_squeezetime.tflite.cli.{name} import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def run_dir(model, tmp_path_factory):
    """A training run folder: `model.keras` and the `config.json` training writes."""
    run = tmp_path_factory.mktemp("run")
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({
        "frames": FRAMES, "frame_interval": 2, "image_size": SIZE, "short_side": SIZE,
        "num_classes": CLASSES, "width_multiplier": 0.25, "class_names": NAMES}))
    return run


@pytest.mark.slow
def test_cli_end_to_end(run_dir, fp32_export, video_dataset, tmp_path):
    """Export CLI error path (too few clips: exit 2, no file) and the harness report."""
    out = tmp_path / "int8.tflite"
    failed = _cli("export", "--model", str(run_dir / "model.keras"), "--quantization", "int8",
                  "--representative-data", str(video_dataset / "val_list.txt"),
                  "--output", str(out))
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert "int8 calibration needs at least 32" in failed.stderr
    assert os.listdir(tmp_path) == []

    # Same settings as the video list; the reference is the Keras model itself.
    report = tmp_path / "report.json"
    done = _cli("evaluate", "--model", fp32_export.path, "--data", str(video_dataset / "val_list.txt"),
                "--reference", str(run_dir / "model.keras"), "--threads", "1", "--runs", "3",
                "--warmup", "1", "--output", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    values = json.loads(report.read_text())
    assert values["agreement_top1"] == 1.0 and values["clips"] == 8
    assert values["logit_max_rel_error"] <= 1e-4
    assert values["latency_ms"]["median"] > 0 and values["size_bytes"] == os.path.getsize(fp32_export.path)
    assert 0 <= values["top1"] <= 1 and values["top5"] >= values["top1"]
    assert (tmp_path / "report.md").read_text().startswith("| variant |")
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"

    bad = _cli("evaluate", "--model", fp32_export.path, "--data", str(tmp_path / "none-*.tfrecord"),
               "--output", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "No TFRecord files match" in bad.stderr
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.slow
def test_cli_several_variants(run_dir, video_dataset, tmp_path):
    """One command, three variants, each converted in its own subprocess into a new folder."""
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "variants"
    done = _cli("export", "--model", str(run_dir / "model.keras"),
                "--quantization", "float32,dynamic,int8", "--input-type", "uint8",
                "--representative-data", str(video_dataset / "val_list.txt"),
                "--representative-clips", "8", "--min-representative-clips", "8",
                "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = json.loads(done.stdout)
    assert [s["quantization"] for s in summaries] == ["float32", "dynamic", "int8"]
    assert all(set(s) == {"output", "size_bytes", "quantization", "input_type", "input_shape",
                          "labels", "float_ops", "ops"} for s in summaries)
    for quantization in ("float32", "dynamic", "int8"):
        assert f"{quantization}: {out / f'model_{quantization}_uint8in.tflite'} (" in done.stderr
    assert sorted(os.listdir(out)) == sorted(
        f"model_{q}_uint8in.{ext}" for q in ("dynamic", "float32", "int8")
        for ext in ("labels.txt", "tflite"))
    # Raw uint8 pixels in every variant, as quantised values of scale 1: a DEQUANTIZE turns
    # them into float inside XNNPACK (no CAST or uint8->int8 QUANTIZE left outside it).
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    for summary in summaries:
        outside = LiteRTModel(summary["output"]).delegation()["ops_outside"]
        assert not {"CAST", "QUANTIZE"} & set(outside), outside
        interpreter = Interpreter(model_path=summary["output"])
        detail = interpreter.get_input_details()[0]
        assert detail["dtype"] == np.uint8 and tuple(detail["shape"]) == (1, FRAMES, SIZE, SIZE, 3)
        assert tuple(detail["quantization"]) == (1.0, 0)
        weights = {t["dtype"] for t in interpreter.get_tensor_details()}
        assert (np.int8 in weights) == (summary["quantization"] != "float32")


def test_cli_bad_variant_lists_write_nothing(run_dir, tmp_path):
    """A bad item, or int8 without calibration data, fails before any conversion."""
    out = tmp_path / "variants"
    bad = _cli("export", "--model", str(run_dir), "--quantization", "float32,int4",
               "--output", str(out))
    assert bad.returncode != 0
    assert "unknown quantization 'int4'" in bad.stderr
    assert "float32, float16, dynamic, int8 or all" in bad.stderr
    no_data = _cli("export", "--model", str(run_dir), "--quantization", "float32,int8",
                   "--output", str(out))
    assert no_data.returncode != 0 and "int8 needs --representative-data" in no_data.stderr
    assert os.listdir(tmp_path) == []
