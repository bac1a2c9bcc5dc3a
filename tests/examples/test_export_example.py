"""`examples/export_int8_and_evaluate.py` reads the report `squeezetime-eval-tflite` writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "export_int8_and_evaluate.py"


def _example_module():
    spec = importlib.util.spec_from_file_location("export_int8_and_evaluate", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reads_one_variant_reports_and_several(tmp_path):
    """The report of one --model lists it under "variants" too: the example reads both."""
    from keras_squeezetime.tflite.report import write_reports

    example = _example_module()
    fp32 = {"variant": "model_float32", "size_bytes": 2_500_000, "top1": 0.5,
            "agreement_top1": 1.0, "latency_ms": {"median": 12.3, "p90": 13.0, "runs": 3}}
    int8 = {**fp32, "variant": "model_int8", "size_bytes": 700_000, "agreement_top1": 0.875}
    write_reports([fp32], tmp_path / "one.json")
    assert example.summary_lines(str(tmp_path / "one.json")) == [
        "model_float32: top-1 50.0%, agreement with Keras 100.0%, 2.5 MB, 12.3 ms"]
    write_reports([fp32, int8], tmp_path / "two.json")
    assert example.summary_lines(str(tmp_path / "two.json"))[1] == (
        "model_int8: top-1 50.0%, agreement with Keras 87.5%, 0.7 MB, 12.3 ms")
