"""The main job (`make demo`) on tiny settings: every step runs and the report is complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "end_to_end_demo.py"


@pytest.mark.slow
def test_tiny_demo_writes_a_complete_report(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--tiny", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = tmp_path / "index.md"
    assert f"Report: {report}" in result.stdout
    text = report.read_text(encoding="utf-8")
    for section in ("## Keras model", "## LiteRT", "## One validation video", "## Steps"):
        assert section in text
    # Every image the report links exists: the confusion matrix, the harness's plot, the
    # explanation's grid and animation.
    images = [line.split("](", 1)[1].rstrip(")") for line in text.splitlines()
              if line.startswith("![")]
    assert len(images) >= 4, images
    for image in images:
        assert (tmp_path / image).is_file(), image
    harness = json.loads((tmp_path / "litert" / "report.json").read_text())
    assert harness["quantization"] == "int8" and harness["input_type"] == "uint8"
    # The tiny run's model is barely trained: its decisions sit near ties, so int8's top-1
    # agreement with it is a matter of rounding (0.25 seen once) and gets no bar here (the
    # LiteRT tests measure it on a model that discriminates). The int8 file's logits still
    # follow the float model's, which a broken export would not.
    assert 0 <= harness["agreement_top1"] <= 1 and harness["logit_cosine"] > 0.98, harness
    assert "of 2 epochs" in text and "vs float32 weights" in text
    assert f"Keras's top-1 on the same clips: {harness['reference_top1']:.1%}" in text
    prediction = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert len(prediction[0]["predictions"]) == 5


def _demo_module(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("end_to_end_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, demo)  # its dataclasses look it up
    spec.loader.exec_module(demo)
    return demo


@pytest.mark.parametrize("completed, stopped", [(2, False), (1, True)])
def test_the_report_says_early_stopping_stopped_the_run_only_when_it_did(
        tmp_path, monkeypatch, completed, stopped):
    """The training line of index.md from the files the tools write (every epoch ran, or
    early stopping ended the run after its first epoch)."""
    import zipfile

    demo = _demo_module(monkeypatch)
    model_dir, evaluation, export, explain = (tmp_path / name for name in
                                              ("model", "evaluation", "litert", "explain"))
    for folder in (model_dir, evaluation, export, explain):
        folder.mkdir()
    (model_dir / "metrics.json").write_text(json.dumps({
        "epochs_completed": completed, "train_seconds_this_run": 3.0,
        "train_clips_per_second": 5.0, "best_val_accuracy_this_run": 0.5,
        "best_epoch_this_run": 0}))
    with zipfile.ZipFile(model_dir / "model.keras", "w") as archive:
        archive.writestr("model.weights.h5", b"0" * 1000)
    (evaluation / "metrics.json").write_text(json.dumps(
        {"top1": 0.5, "top5": 1.0, "mean_class_accuracy": 0.5, "num_videos": 4}))
    (export / "report.json").write_text(json.dumps({
        "variant": "int8", "clips": 4, "top1": 0.5, "reference_top1": 0.75,
        "agreement_top1": 1.0, "logit_cosine": 0.99, "latency_ms": {"median": 1.0},
        "size_bytes": 500}))

    report = demo.write_report(tmp_path, demo.TINY, [], tmp_path / "video.mp4", "[]",
                               evaluation, export, explain, model_dir)

    line = next(line for line in report.read_text().splitlines()
                if line.startswith("- training:"))
    assert line.startswith(f"- training: {completed} of 2 epochs"), line
    assert ("stopped after 1 epochs without a better validation accuracy" in line) == stopped
    assert "at epoch 0 of history.csv, numbered from 0" in line
    # The LiteRT top-1 is of one centre clip per video: set beside Keras's on those clips.
    assert ("One centre clip per video (4 clips); Keras's top-1 on the same clips: 75.0%."
            in report.read_text())


def test_a_rerun_replaces_an_earlier_demo_and_spares_other_folders(tmp_path, monkeypatch):
    demo = _demo_module(monkeypatch)
    earlier = tmp_path / "demo"
    (earlier / "work" / "model").mkdir(parents=True)
    (earlier / "work" / "model" / "model.keras").write_bytes(b"a finished run")
    demo.fresh_output(earlier)  # `make demo` twice: the second run starts from nothing
    assert not earlier.exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="holds no earlier demo"):
        demo.fresh_output(other)
    assert (other / "notes.txt").read_text() == "keep me"
