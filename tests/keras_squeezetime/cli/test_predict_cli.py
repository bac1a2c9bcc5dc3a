"""`squeezetime-predict` in a subprocess: results, timeline files, and clean errors on bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.helpers.cli_runs import cli_runs

BIAS = np.array([0.5, 2.5, -1.0])
NAMES = ["swim", "dance", "climb"]


def _predict(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "keras_squeezetime.cli.predict", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    # TensorFlow may log to stderr too; the tool's own message is one prefixed line.
    lines = [line for line in result.stderr.splitlines() if line.startswith("squeezetime-")]
    assert len(lines) == 1 and lines[0].startswith("squeezetime-predict: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A trained-model folder whose SqueezeTime head ignores the video: softmax(BIAS)."""
    from keras_squeezetime import SqueezeTime

    model = SqueezeTime(input_shape=(8, 64, 64, 3), width_multiplier=0.25, num_classes=3,
                        pos_embed_sizes=(16, 8, 4, 2))
    fc = model.get_layer("head").fc
    fc.kernel.assign(np.zeros(fc.kernel.shape, "float32"))
    fc.bias.assign(BIAS.astype("float32"))
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": 8, "frame_interval": 4, "image_size": 64, "short_side": 64, "num_classes": 3,
        "width_multiplier": 0.25, "class_names": NAMES}))
    return folder


@pytest.fixture(scope="module")
def failures(model_dir, parity, tmp_path_factory):
    """The failing runs the tests below check, in one process: `results[name]`, and the
    folder `tmp` their files are in. Tests only read them."""
    from keras_squeezetime.video.writer import write_video

    tmp = tmp_path_factory.mktemp("failures")
    # Real H.264 videos, as `make_video` and `make_broken_file("truncated")` write them.
    frames = np.random.default_rng(0).integers(0, 256, (20, 64, 80, 3), dtype=np.uint8)
    video, truncated = tmp / "clip.mp4", tmp / "truncated.mp4"
    write_video(video, frames, fps=10)
    write_video(truncated, frames)
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
    (tmp / "model.onnx").write_bytes(b"onnx")
    (tmp / "labels.txt").write_text("jump\nrun\nsit\n")
    none = tmp / "none.keras"
    runs = {
        "missing_video": [tmp / "missing.mp4", "--model", model_dir],
        "truncated_video": [truncated, "--model", model_dir],
        "timeline_clash": [tmp / "a" / "0.mp4", tmp / "b" / "0.mp4", "--model", none, "--long",
                           "--output", tmp / "out"],
        "num_clips_with_long": [tmp / "a.mp4", "--model", none, "--long", "--num-clips=3"],
        "window_flags_without_long": [tmp / "a.mp4", "--model", none, "--window-stride=8",
                                      "--output", tmp / "other_out"],
        "onnx_model": [video, "--model", tmp / "model.onnx"],
        "missing_model": [video, "--model", tmp / "nope.keras"],
        "no_model": [video],
        "label_count": [video, "--model", parity["pth"], f"--labels={tmp / 'labels.txt'}"],
    }
    return types.SimpleNamespace(results=cli_runs("keras_squeezetime.cli.predict", runs), tmp=tmp)


@pytest.fixture
def video(make_video):
    return make_video("clip.mp4", num_frames=40, height=64, width=80, fps=10)


def test_json_output_has_the_head_bias_ranking(model_dir, video):
    result = _predict(video, "--model", model_dir, "--json", "--top=2")
    assert result.returncode == 0, result.stderr[-3000:]
    [entry] = json.loads(result.stdout)
    expected = np.exp(BIAS) / np.exp(BIAS).sum()
    assert entry["video"] == str(video)
    assert [(p["index"], p["label"]) for p in entry["predictions"]] == [(1, "dance"), (0, "swim")]
    assert entry["predictions"][0]["probability"] == pytest.approx(expected[1], abs=1e-5)
    # mmaction test clip of config.json's 8 frames every 4th: it spans (8 - 1) * 4 + 1 = 29
    # frames, offset (40 - 29) // 2 = 5.
    assert entry["frame_indices"] == [list(range(5, 37, 4))]


@pytest.fixture(scope="module")
def discriminating_dir(tmp_path_factory):
    """A trained-model folder whose model tells clips apart (`discriminating_model`)."""
    from tests.helpers import discriminating_model

    folder = tmp_path_factory.mktemp("discriminating")
    discriminating_model(8, 64, num_classes=3, seed=3).save(folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": 8, "frame_interval": 4, "image_size": 64, "short_side": 64, "num_classes": 3,
        "width_multiplier": 0.25, "pos_embed_sizes": [16, 8, 4, 2], "class_names": NAMES}))
    return folder


def test_json_output_is_predict_videos_for_each_video(discriminating_dir, make_video):
    """With a model whose answers depend on the video, the CLI gives each video what
    `predict_video` (the library, in this process) gives it: its own probabilities, not
    another video's, read with config.json's clip settings."""
    from keras_squeezetime.apps.predictor import load_predictor
    from keras_squeezetime.apps.prediction import predict_video
    from tests.helpers import varied_clips

    frames = varied_clips(2, frames=40, size=64, seed=5).round().astype(np.uint8)
    videos = [make_video(f"v{i}.mp4", frames=clip, fps=10) for i, clip in enumerate(frames)]
    result = _predict(*videos, "--model", discriminating_dir, "--json", "--top=3")
    assert result.returncode == 0, result.stderr[-3000:]
    entries = json.loads(result.stdout)
    assert len(entries) == 2
    predictor = load_predictor(discriminating_dir)
    expected = [predict_video(video, predictor, top=3) for video in videos]
    for entry, library in zip(entries, expected):
        assert entry["video"] == library.path
        assert entry["frame_indices"] == library.frame_indices.tolist() == [list(range(5, 37, 4))]
        assert [(p["index"], p["label"]) for p in entry["predictions"]] == [
            (p.index, p.label) for p in library.top]
        np.testing.assert_allclose([p["probability"] for p in entry["predictions"]],
                                   [p.probability for p in library.top], atol=1e-6)
    # The videos get different answers (measured: swim 0.46 and climb 0.91), so a CLI that
    # ignored its video, or gave every video the first one's, would fail above.
    assert expected[0].top[0].index != expected[1].top[0].index
    assert np.abs(expected[0].probabilities - expected[1].probabilities).max() > 0.1


def test_long_writes_a_timeline(model_dir, video, tmp_path):
    out = tmp_path / "timeline"
    result = _predict(video, "--model", model_dir, "--long", "--window-stride=8",
                      "--frame-interval=2", f"--output={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    # Windows of 15 frames every 8th over 40 frames: 0, 8, 16, 24 and one ending at 40.
    assert "5 windows, 1 segments" in result.stdout and "dance" in result.stdout
    with open(out / "clip.timeline.csv", newline="") as handle:
        [segment] = list(csv.DictReader(handle))
    assert (segment["label"], segment["start_frame"], segment["end_frame"]) == ("dance", "0", "40")
    assert float(segment["end_time"]) == pytest.approx(4.0)
    with open(out / "clip.windows.csv", newline="") as handle:
        assert [r["start_frame"] for r in csv.DictReader(handle)] == ["0", "8", "16", "24", "25"]
    timeline = json.loads((out / "clip.timeline.json").read_text())
    assert timeline["window_stride"] == 8 and len(timeline["windows"]) == 5
    assert (out / "clip.timeline.png").stat().st_size > 1000


def test_a_header_that_over_counts_predicts_from_the_frames_that_exist(
        model_dir, make_overcounted_video, tmp_path):
    """As OpenCV's tree.avi (header 444 frames, 68 decode): clips and windows from 20 frames."""
    video = make_overcounted_video(num_frames=40, keep=20, height=64, width=80)
    result = _predict(video, "--model", model_dir, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    # 8 frames every 4th span 29 > 20 frames: one window at 0, wrapping around (mmaction).
    assert json.loads(result.stdout)[0]["frame_indices"] == [[0, 4, 8, 12, 16, 0, 4, 8]]
    # Both are said, as the tool's own lines (no Python source line under them).
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("squeezetime-")]
    assert warnings == [
        f"squeezetime-predict: warning: {video}: its header counts 40 frames but the file "
        "holds 20 (cut short?); frames are sampled from those 20.",
        f"squeezetime-predict: warning: {video}: 20 frames, fewer than the 29 a clip spans "
        "(8 frames, every 4); the clip wraps around to the first frames."], result.stderr
    out = tmp_path / "long"
    result = _predict(video, "--model", model_dir, "--long", "--frame-interval=2",
                      "--window-stride=5", f"--output={out}", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    [timeline] = json.loads(result.stdout)
    # 15-frame windows every 5th over the 20 frames that decode: 0 and 5 (ending at 20).
    assert timeline["num_frames"] == 20
    assert [w["start_frame"] for w in timeline["windows"]] == [0, 5]


def test_missing_and_corrupt_videos(failures):
    result = failures.results["missing_video"]
    _assert_one_error_line(result, "missing.mp4", "no such file")
    assert result.returncode == 1 and result.stdout == ""
    _assert_one_error_line(failures.results["truncated_video"], "truncated.mp4")


def test_long_refuses_videos_whose_timelines_would_overwrite_each_other(failures):
    # Checked before anything loads: the model does not even exist.
    result = failures.results["timeline_clash"]
    _assert_one_error_line(result, "a/0.mp4 and ", "b/0.mp4 would write the same timeline")
    assert result.returncode == 2 and not (failures.tmp / "out").exists()


def test_flags_that_would_be_ignored_are_refused(failures):
    # Checked before anything loads: the model does not even exist.
    _assert_one_error_line(failures.results["num_clips_with_long"],
                           "--num-clips averages clips over a whole video")
    result = failures.results["window_flags_without_long"]
    _assert_one_error_line(result, "--window-stride, --output only apply with --long")
    assert result.returncode == 2


def test_wrong_model_kind_and_missing_model(failures):
    result = failures.results["onnx_model"]
    _assert_one_error_line(result, "model.onnx", ".keras", ".tflite", ".pth")
    assert result.returncode == 2
    _assert_one_error_line(failures.results["missing_model"], "does not exist")
    result = failures.results["no_model"]
    assert result.returncode != 0 and "--model" in result.stderr
    assert "Traceback" not in result.stderr


def test_label_count_mismatch(failures):
    result = failures.results["label_count"]
    _assert_one_error_line(result, "has 3 names", "predicts 10 classes")
    assert result.returncode == 2
