"""The harness report's Markdown table."""

from __future__ import annotations


def test_table_shows_latency_and_xnnpack_delegation():
    from keras_squeezetime.tflite.report import markdown_table

    base = {"size_bytes": 2_500_000, "top1": 0.75, "latency_ms": {"median": 12.5, "p90": 13.0}}
    table = markdown_table([
        {"variant": "int8", **base, "xnnpack": {"partitions": 8, "ops_outside": {"ADD": 6, "SOFTMAX": 1}}},
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
