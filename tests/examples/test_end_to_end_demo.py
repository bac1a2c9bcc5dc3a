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
    # Every image the report links exists.
    for line in text.splitlines():
        if line.startswith("!["):
            assert (tmp_path / line.split("](", 1)[1].rstrip(")")).is_file(), line
    harness = json.loads((tmp_path / "litert" / "report.json").read_text())
    assert harness["quantization"] == "int8" and harness["input_type"] == "uint8"
    assert 0.0 <= harness["agreement_top1"] <= 1.0
    assert "of 2 epochs" in text and "vs float32 weights" in text
    prediction = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert len(prediction[0]["predictions"]) == 5


def test_a_rerun_replaces_an_earlier_demo_and_spares_other_folders(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("end_to_end_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, demo)  # its dataclasses look it up
    spec.loader.exec_module(demo)
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
