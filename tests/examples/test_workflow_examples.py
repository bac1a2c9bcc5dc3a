"""Smoke test of the workflow examples, chained as a user would run them, on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keras_squeezetime.datasets.synthetic import CLASS_NAMES, generate_synthetic_dataset

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


@pytest.mark.slow
def test_finetune_classify_timeline_and_export_examples(tmp_path):
    data = tmp_path / "data"
    # 32 px (the model takes 29 px and up) and one batch per epoch: the time goes to
    # process starts and tracing, not to convolutions nobody checks.
    generate_synthetic_dataset(data, num_train_per_class=2, num_val_per_class=1, num_frames=16,
                               height=32, width=32, seed=1)
    out = tmp_path / "mine"
    finetune = ("--train", str(data / "videos" / "train"), "--val", str(data / "videos" / "val"),
                "--output", str(out), "--frames", "4", "--frame-interval", "2",
                "--image-size", "32", "--short-side", "32", "--epochs", "1", "--batch-size", "16")
    log = _example("finetune_on_folder.py", *finetune)
    assert f"classes: {sorted(CLASS_NAMES)}" in log and "validation top-1" in log
    model = out / "run" / "model.keras"
    assert json.loads((out / "evaluation" / "metrics.json").read_text())["num_videos"] == 8
    # Run again (as after an interruption): each step resumes or is skipped, and it ends.
    again = _example("finetune_on_folder.py", *finetune)
    assert f"{out / 'run'} is trained; evaluating it." in again and "validation top-1" in again

    video = next((data / "videos" / "val").glob("*/*.mp4"))
    ranking = _example("classify_video.py", str(video), "--model", str(model)).splitlines()
    assert len(ranking) == 5 and ranking[0].startswith("1. ")
    assert ranking[0].split()[1] in CLASS_NAMES

    timeline = _example("long_video_timeline.py", str(video), "--model", str(model),
                        "--stride", "4", "--output", str(tmp_path / "timeline"))
    assert "wrote" in timeline and (tmp_path / "timeline" / f"{video.stem}.png").is_file()

    exported = _example("export_int8_and_evaluate.py", "--model", str(model),
                        "--calibration", str(out / "records" / "train" / "*.tfrecord"),
                        "--data", str(out / "records" / "val" / "*.tfrecord"),
                        "--output", str(tmp_path / "litert"), "--calibration-clips", "16")
    assert "model_float32: " in exported and "agreement with Keras 100.0%" in exported
    assert (tmp_path / "litert" / "model_int8.tflite").stat().st_size < (
        tmp_path / "litert" / "model_float32.tflite").stat().st_size
