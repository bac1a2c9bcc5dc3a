"""int8 that agrees with float: the simulated int8 graph, MSE activation ranges,
quantisation-aware fine-tuning and `squeezetime-export --target-agreement`.

A tiny real SqueezeTime (width 0.25, 4 frames, 64 px) on real synthetic videos, converted by
the real TFLite converter and run by the real LiteRT interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

FRAMES, SIZE, CLASSES = 4, 64, 8


def _trained_model(clips, labels):
    """Fitted for a few epochs on the calibration clips: a model whose decisions vary."""
    from keras_squeezetime import SqueezeTime

    keras.utils.set_random_seed(7)
    model = SqueezeTime(input_shape=(FRAMES, SIZE, SIZE, 3), num_classes=CLASSES,
                        width_multiplier=0.25, pos_embed_sizes=(16, 8, 4, 2), dropout_rate=0.0)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(clips, labels, batch_size=8, epochs=12, verbose=0)
    return model


def _logits(model, clips):
    head = model.get_layer("head")
    activation, head.activation = head.activation, keras.activations.linear
    try:
        return np.asarray(model(clips, training=False))
    finally:
        head.activation = activation


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Calibration videos (seed 0) and held-out videos (seed 1), 8 classes."""
    from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("agreement_videos")
    generate_synthetic_dataset(root / "calibration", 0, 4, num_frames=12, height=SIZE, width=SIZE)
    generate_synthetic_dataset(root / "held_out", 0, 2, num_frames=12, height=SIZE, width=SIZE,
                               seed=1)
    return root / "calibration" / "val_list.txt", root / "held_out" / "val_list.txt"


@pytest.fixture(scope="module")
def clips(videos):
    """`(calibration clips, held-out clips, calibration labels)`."""
    from keras_squeezetime.model_config import ClipSettings
    from keras_squeezetime.tflite.calibration import load_clips

    spec = ClipSettings(frames=FRAMES, frame_interval=2, image_size=SIZE, short_side=SIZE)
    calibration, labels = load_clips(str(videos[0]), spec)
    return calibration, load_clips(str(videos[1]), spec)[0], labels


@pytest.fixture(scope="module")
def trained(clips):
    return _trained_model(clips[0], clips[2])


@pytest.fixture(scope="module")
def calibrated(trained, clips):
    """`(folded Keras model, calibrated float LiteRT graph)`, as the int8 export makes it."""
    from keras_squeezetime import fold_batch_norm
    from keras_squeezetime.tflite.export import calibrated_model

    model = fold_batch_norm(trained)
    return model, calibrated_model(model, clips[0])


def _int8_scores(calibrated_model, clips):
    from keras_squeezetime.tflite.int8_agreement import _scores
    from keras_squeezetime.tflite.int8_quantization import quantize

    return _scores(quantize(calibrated_model, input_type="uint8"), clips)


def test_simulated_graph_is_the_float_graph_and_rounds_like_int8(calibrated, clips):
    from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph

    model, graph_bytes = calibrated
    held_out = clips[1]
    reference = _logits(model, held_out)
    # The model discriminates: several classes win among the clips.
    assert len(set(np.argmax(reference, 1))) >= 3, np.argmax(reference, 1)
    graph = quantized_graph_class()(read_graph(graph_bytes))
    floats = np.asarray(graph(held_out, quantize=False))
    np.testing.assert_allclose(floats, reference, atol=1e-4 * np.abs(reference).max())
    assert graph.spec.input_layout == "frames"
    simulated = np.asarray(graph(held_out, quantize=True))
    real = _int8_scores(graph_bytes, held_out)
    simulated_error = np.sqrt(np.mean((simulated - reference) ** 2))
    real_error = np.sqrt(np.mean((real - reference) ** 2))
    # Same rounding grid as the real int8 model: an error of the same size (individual
    # values differ where kernels requantise in fixed point), not zero, not far larger.
    assert 0.5 * real_error < simulated_error < 2.0 * real_error, (simulated_error, real_error)


def test_simulated_stacked_graph_takes_pixel_clips(calibrated, clips):
    """The stacked layout's graph (no squeeze, channel order folded into the stem) is
    simulated from the same pixel clips and computes the same logits."""
    from keras_squeezetime.tflite.export import calibrated_model
    from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph

    model, _ = calibrated
    spec = read_graph(calibrated_model(model, clips[0][:8], input_layout="stacked"))
    assert spec.input_layout == "stacked"
    assert "TRANSPOSE" not in {op.name for op in spec.ops}
    held_out = clips[1][:8]
    floats = np.asarray(quantized_graph_class()(spec)(held_out, quantize=False))
    reference = _logits(model, held_out)
    np.testing.assert_allclose(floats, reference, atol=1e-4 * np.abs(reference).max())


def test_mse_ranges_round_trip_better_than_min_max(calibrated, clips):
    from keras_squeezetime.tflite.activation_ranges import mse_ranges
    from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph

    _, graph_bytes = calibrated
    tuned, summary = mse_ranges(graph_bytes, clips[0])
    assert summary["narrowed"] > 0 and summary["median_width"] < 1.0
    before, after = read_graph(graph_bytes), read_graph(tuned)
    values = quantized_graph_class()(before).run(clips[0].astype(np.float32), quantize=False)

    def round_trip(x, low, high):  # int8 quantise-dequantise, 0 exactly representable
        low, high = min(low, 0.0), max(high, 0.0)
        scale = (high - low) / 255
        zero = np.round(-low / scale)
        return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale

    changed = [t for t in after.ranges if after.ranges[t] != before.ranges[t]]
    assert changed
    for t in changed:
        low, high = after.ranges[t]
        old_low, old_high = before.ranges[t]
        assert min(old_low, 0) <= low <= 0 <= high <= old_high
        x = np.asarray(values[t])
        new_error = np.mean((round_trip(x, low, high) - x) ** 2)
        old_error = np.mean((round_trip(x, old_low, old_high) - x) ** 2)
        assert new_error <= old_error * 1.02, before.names[t]


def test_quantisation_aware_fine_tuning_learns_and_writes_back(calibrated, clips):
    from keras_squeezetime.tflite import qat
    from keras_squeezetime.tflite.simulated_int8 import read_graph

    _, graph_bytes = calibrated
    result = qat.fine_tune(graph_bytes, clips[0], clips[1], epochs=2, learning_rate=3e-4)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(0 <= h["held_out_agreement"] <= 1 for h in result.history)
    before, after = read_graph(graph_bytes), read_graph(result.calibrated)
    assert after.ranges == before.ranges  # the ranges training saw are those shipped
    moved = [i for i in before.trainable
             if not np.array_equal(before.constants[i], after.constants[i])]
    assert bool(moved) == (result.best_epoch > 0)
    # Whatever was kept, it converts to a working int8 model.
    scores = _int8_scores(result.calibrated, clips[1])
    assert scores.shape == (len(clips[1]), CLASSES) and np.isfinite(scores).all()


def test_unit_ranking_covers_the_network(calibrated, clips):
    from keras_squeezetime.tflite.int8_agreement import rank_units, unit_of

    assert unit_of("squeezetime_1/stage2_block3_1/ctl_1/ioi_1/mul") == "stage2_block3"
    assert unit_of("squeezetime_1/stem_conv_1/convolution1") == "stem"
    assert unit_of("squeezetime_1/head_1/Mean") == "head"
    assert unit_of("squeezetime_1/squeeze_1/transpose") is None
    ranking = rank_units(calibrated[1], clips[0][:16])
    names = [unit for unit, _ in ranking]
    assert sorted(names) == sorted(["stem", "head"] + [
        f"stage{s}_block{b}" for s, n in zip(range(1, 5), (3, 4, 6, 3)) for b in range(1, n + 1)])
    shares = [share for _, share in ranking]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0


def _export(run, videos, out, target, *extra):
    code = "from keras_squeezetime.tflite.cli.export import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, "--model", str(run / "model.keras"), "--quantization", "int8",
         "--input-type", "uint8", "--representative-data", str(videos[0]),
         "--min-representative-clips", "16", "--agreement-data", str(videos[1]),
         "--target-agreement", str(target), "--output", str(out), *extra],
        capture_output=True, text=True)


def _run_dir(model, folder):
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": FRAMES, "frame_interval": 2, "image_size": SIZE, "short_side": SIZE,
        "num_classes": CLASSES, "width_multiplier": 0.25}))
    return folder


@pytest.mark.slow
def test_cli_target_agreement_reports_what_it_did(trained, videos, clips, tmp_path):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    model = trained
    run = _run_dir(model, tmp_path)
    out = tmp_path / "out" / "model_int8.tflite"
    done = _export(run, videos, out, 0.9)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)["int8"]
    assert report["target"] == 0.9 and report["held_out_clips"] == len(clips[1]) == 16
    assert report["agreement"] >= 0.9
    assert report["method"].startswith("int8") and report["activation_ranges"] in ("min/max", "mse")
    assert {c["ranges"] for c in report["candidates"]} >= {"min/max", "mse"}
    assert ("+float-units" in report["method"]) == bool(report["float_layers"])
    # The agreement reported is the written file's, measured independently here.
    reference = _logits(model, clips[1])
    assert len(set(np.argmax(reference, 1))) >= 3
    scores = LiteRTModel(out).scores(clips[1])
    assert np.mean(scores.argmax(1) == reference.argmax(1)) == pytest.approx(report["agreement"])


@pytest.mark.slow
def test_cli_target_agreement_out_of_reach_fails_naming_best(trained, videos, clips, tmp_path):
    # Near-tied classes: the head's class differences shrunk 1000x around their mean. Every
    # top-1 decision then hangs on ~1e-3 of the logits, which no int8 form keeps, not even
    # with every block float; the argmax still varies.
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    fc = model.get_layer("head").fc
    kernel = np.asarray(fc.kernel)
    mean = kernel.mean(axis=1, keepdims=True)
    fc.kernel.assign(mean + 1e-3 * (kernel - mean))
    fc.bias.assign(1e-3 * np.asarray(fc.bias))
    reference = _logits(model, clips[1])
    assert len(set(np.argmax(reference, 1))) >= 2
    run = _run_dir(model, tmp_path)
    out = tmp_path / "out" / "model_int8.tflite"
    failed = _export(run, videos, out, 1.0)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert "int8 reached at most" in message and "below the target 1.0" in message
    assert "units kept float" in message
    assert not out.exists() and not os.listdir(out.parent)
