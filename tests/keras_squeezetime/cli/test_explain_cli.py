"""`squeezetime-explain` in a subprocess: PNG grid and GIF, and clean errors on bad input
(those in one process: `cli_runs`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from keras_squeezetime.video.writer import write_video
from tests.conftest import solid_frames
from tests.helpers.cli_runs import cli_runs

NAMES = [f"action {i}" for i in range(10)]


def _explain(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "keras_squeezetime.cli.explain", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(NAMES) + "\n")
    return path


def test_writes_grid_and_gif_for_the_official_checkpoint(parity, labels, make_video, tmp_path):
    video = make_video("wave.mp4", num_frames=40, height=64, width=80, fps=10)
    out = tmp_path / "explained"
    result = _explain(video, "--model", parity["pth"], f"--labels={labels}", "--image-size=64",
                      "--frame-interval=2", "--max-rows=4", "--json", f"--output={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["label"] == NAMES[summary["class_index"]] and 0 < summary["probability"] < 1
    assert summary["frame_indices"] == list(range(4, 36, 2))
    assert summary["png"] == str(out / "wave.explain.png")
    with Image.open(out / "wave.explain.png") as grid:
        assert grid.size == (660, 940)
    with Image.open(out / "wave.explain.gif") as gif:
        assert gif.n_frames == 16 and gif.size == (192, 64)


BAD_INPUTS = {"missing video": "no such file", "corrupt video": "not a readable container",
              "tflite model": "no gradients", "wrong extension": "Unsupported model file",
              "label mismatch": "has 2 names but", "class out of range": "out of range"}


@pytest.fixture(scope="module")
def bad_input_runs(parity, tmp_path_factory) -> dict:
    """squeezetime-explain on each bad input, in one process (`cli_runs`)."""
    tmp = tmp_path_factory.mktemp("explain_failures")
    video, model, labels = tmp / "ok.mp4", parity["pth"], tmp / "labels.txt"
    write_video(video, solid_frames(20, 48, 64))  # as make_video writes it
    labels.write_text("\n".join(NAMES) + "\n")
    (tmp / "not_a_video.mp4").write_text("this is not a video\n" * 20, encoding="utf-8")
    for name in ("model.tflite", "model.h5"):
        (tmp / name).write_bytes(b"not a model")
    (tmp / "two.txt").write_text("a\nb\n")
    extra = [f"--labels={labels}"]
    runs = {
        "missing video": [tmp / "gone.mp4", "--model", model, *extra],
        "corrupt video": [tmp / "not_a_video.mp4", "--model", model, *extra],
        "tflite model": [video, "--model", tmp / "model.tflite", *extra],
        "wrong extension": [video, "--model", tmp / "model.h5", *extra],
        "label mismatch": [video, "--model", model, f"--labels={tmp / 'two.txt'}"],
        "class out of range": [video, "--model", model, *extra, "--class-index=10",
                               "--image-size=64"],
    }
    return cli_runs("keras_squeezetime.cli.explain", runs, timeout=300)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_clean_error_line(case, bad_input_runs):
    result = bad_input_runs[case]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("squeezetime-")]
    assert len(lines) == 1 and lines[0].startswith("squeezetime-explain: error: "), result.stderr
    assert BAD_INPUTS[case] in lines[0]
