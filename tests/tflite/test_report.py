"""The harness report: its metrics and its Markdown table."""

from __future__ import annotations

import pytest


def test_table_shows_latency_and_xnnpack_delegation():
    from keras_squeezetime.tflite.report import markdown_table

    base = {"size_bytes": 2_500_000, "top1": 0.75, "latency_ms": {"median": 12.5, "p90": 13.0}}
    table = markdown_table([
        {"variant": "int8", **base,
         "xnnpack": {"partitions": 8, "ops_outside": {"ADD": 6, "SOFTMAX": 1}}},
        {"variant": "fp32", **base, "xnnpack": {"partitions": 1, "ops_outside": {}}},
        {"variant": "old", **base},
    ]).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in table[2:]}
    column = header.index("ops outside XNNPACK")
    assert rows["int8"][column] == "ADD x6, SOFTMAX x1"
    assert rows["fp32"][column] == "none"
    assert rows["old"][column] == "-"
    assert rows["int8"][header.index("XNNPACK partitions")] == "8"
    assert rows["int8"][header.index("median ms")] == "12.50"
    assert rows["int8"][header.index("size (MB)")] == "2.50"


def test_quality_metrics_on_constructed_predictions():
    """Every metric on four clips whose values are worked out by hand (see the comments)."""
    import math

    import numpy as np

    from keras_squeezetime.tflite.report import quality_metrics

    labels = np.array([0, 2, 4, 5])
    scores = np.array([
        [3, 1, 0, 0, 0, 0],  # top-1 0: right
        [0, 5, 2, 0, 0, 0],  # top-1 1: wrong; label 2 is second: in the top 5
        [1, 0, 0, 0, 0, 0],  # top-1 0; ties keep index order: label 4 is 5th, in the top 5
        [6, 5, 4, 3, 2, 1],  # top-1 0, top 5 = 0..4: label 5 in neither
    ], dtype=np.float64)
    reference = np.array([
        [3, 1, 0, 0, 0, 0],  # top-1 0: agrees; cosine 1; error 0
        [0, 2, 5, 0, 0, 0],  # top-1 2: disagrees; cosine 20/29; error 3
        [0, 1, 0, 0, 0, 0],  # top-1 1: disagrees; cosine 0; error 1
        [1, 0, 0, 0, 0, 0],  # top-1 0: agrees; cosine 6/sqrt(91); error 5
    ], dtype=np.float64)
    metrics = quality_metrics(scores, labels, reference)
    expected = {
        "clips": 4,
        "top1": 1 / 4,
        "top5": 3 / 4,
        "reference_top1": 2 / 4,  # reference top-1 0, 2, 1, 0 against labels 0, 2, 4, 5
        "agreement_top1": 2 / 4,
        "logit_cosine": (1 + 20 / 29 + 0 + 6 / math.sqrt(91)) / 4,
        "logit_cosine_min": 0.0,
        "logit_max_abs_error": 5.0,
        "logit_max_rel_error": 5 / 5,  # largest error over largest |reference| (row 2's 5)
    }
    assert set(metrics) == set(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    # Without a reference only accuracy is reported.
    assert set(quality_metrics(scores, labels, None)) == {"clips", "top1", "top5"}


def test_quality_metrics_count_each_clip_once_and_by_its_first_choice():
    """Accuracies far from 1/2, on rows without ties, worked out by hand.

    Each figure here differs from what the second or the last choice of each row, or the
    opposite comparison, would give: a metric that counted matches the wrong way round or
    read the wrong column of the ranking fails.
    """
    import numpy as np

    from keras_squeezetime.tflite.report import quality_metrics

    labels = np.array([0, 1, 2, 1])
    scores = np.array([
        [5, 4, 3, 2, 1, 0],  # ranking 0 1 2 3 4 5: top-1 right
        [0, 5, 4, 3, 2, 1],  # ranking 1 2 3 4 5 0: top-1 right
        [0, 1, 5, 4, 3, 2],  # ranking 2 3 4 5 1 0: top-1 right
        [1, 0, 2, 3, 4, 5],  # ranking 5 4 3 2 0 1: wrong, and label 1 is last: not in top 5
    ], dtype=np.float64)
    reference = scores.copy()
    reference[3] = [0, 4, 0, 0, 0, 1]  # the reference picks the label (1); scores picked 5
    metrics = quality_metrics(scores, labels, reference)
    # Second choices 1 2 3 4 match no label (0/4), last choices 5 0 0 1 match one (1/4).
    assert metrics["top1"] == 3 / 4
    assert metrics["top5"] == 3 / 4
    assert metrics["reference_top1"] == 4 / 4  # reference top-1 0 1 2 1 = labels
    assert metrics["agreement_top1"] == 3 / 4  # rows 0-2 agree, row 3 (5 vs 1) does not


def _variant(name: str, top1: float) -> dict:
    return {"variant": name, "size_bytes": 2_000_000, "top1": top1, "agreement_top1": 1.0,
            "latency_ms": {"median": 3.0, "p90": 4.0, "runs": 3}}


def test_report_json_always_lists_its_variants(tmp_path):
    """`{"variants": [...]}` for one variant or several, so a reader needs no case; one
    variant's keys stay at the top level too, for readers of the old one-variant JSON."""
    import json

    from keras_squeezetime.tflite.report import write_reports

    one, two = _variant("fp32", 0.5), _variant("int8", 0.25)
    paths = write_reports([one], tmp_path / "one.json")
    assert paths == [str(tmp_path / name) for name in ("one.json", "one.md", "one.png")]
    assert json.loads((tmp_path / "one.json").read_text()) == {**one, "variants": [one]}
    write_reports([one, two], tmp_path / "two.json")
    assert json.loads((tmp_path / "two.json").read_text()) == {"variants": [one, two]}
