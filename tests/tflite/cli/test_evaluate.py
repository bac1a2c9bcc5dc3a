"""`squeezetime-eval-tflite` as a user runs it: report files, and a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _cli(*args):
    code = "from keras_squeezetime.tflite.cli.evaluate import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


@pytest.mark.slow
def test_report_files(tiny, run_dir, video_dataset, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite

    path = export_tflite(tiny.folded, tmp_path / "m.tflite", input_layout="stacked",
                         sampling={"frame_interval": 2, "short_side": tiny.SIZE}).path
    report = tmp_path / "report.json"
    done = _cli("--model", path, "--data", str(video_dataset / "val_list.txt"),
                "--reference", str(run_dir / "model.keras"), "--threads", "1", "--runs", "3",
                "--warmup", "1", "--nomemory", "--output", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    values = json.loads(report.read_text())
    assert values["clips"] == 8 and values["input_layout"] == "stacked"
    assert values["agreement_top1"] == 1.0 and values["logit_max_rel_error"] <= 1e-4
    assert values["compiled_model"] == {"max_abs_diff": 0.0, "clips": 8}
    assert values["size_bytes"] == os.path.getsize(path)
    table = (tmp_path / "report.md").read_text()
    assert table.startswith("| variant |") and "CompiledModel max diff" in table
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_data_is_named(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"not a model")
    bad = _cli("--model", str(tmp_path / "m.tflite"), "--data", str(tmp_path / "none-*.tfrecord"),
               "--output", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a LiteRT/TFLite model" in bad.stderr
    assert not (tmp_path / "bad.json").exists()
