"""Evaluation reports of exported variants: JSON, a Markdown table and a PNG plot."""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from keras_squeezetime import file_paths
from keras_squeezetime.labels import rank_classes

TABLE_COLUMNS = (
    ("variant", "variant"), ("size_bytes", "size (MB)"), ("top1", "top-1"), ("top5", "top-5"),
    ("agreement_top1", "top-1 agreement"), ("logit_cosine", "logit cosine"),
    ("logit_max_rel_error", "logit max rel. error"), ("latency_median", "median ms"),
    ("latency_p90", "p90 ms"), ("peak_memory_bytes", "peak MB"),
    ("xnnpack_partitions", "XNNPACK partitions"), ("ops_outside_xnnpack", "ops outside XNNPACK"),
    ("compiled_model_max_abs_diff", "CompiledModel max diff"),
    ("fp16_agreement_top1", "fp16-arithmetic agreement"), ("gpu_status", "GPU accelerator"),
)


def quality_metrics(scores: np.ndarray, labels: np.ndarray, reference: np.ndarray | None) -> dict:
    """top-1/top-5 accuracy of `scores` `(N, C)`, and agreement/cosine/max error to `reference`."""
    order = rank_classes(scores)
    metrics = {
        "clips": int(len(scores)),
        "top1": float(np.mean(order[:, 0] == labels)),
        "top5": float(np.mean([label in row[:5] for row, label in zip(order, labels)])),
    }
    if reference is not None:
        cosine = np.sum(scores * reference, 1) / (
            np.linalg.norm(scores, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12)
        metrics.update({
            "reference_top1": float(np.mean(np.argmax(reference, 1) == labels)),
            "agreement_top1": float(np.mean(order[:, 0] == np.argmax(reference, 1))),
            "logit_cosine": float(np.mean(cosine)),
            "logit_cosine_min": float(np.min(cosine)),
            "logit_max_abs_error": float(np.max(np.abs(scores - reference))),
            "logit_max_rel_error": float(np.max(np.abs(scores - reference))
                                         / np.max(np.abs(reference))),
        })
    return metrics


def markdown_table(reports: Sequence[dict]) -> str:
    """One row per variant, with the columns of `TABLE_COLUMNS` it has."""
    lines = ["| " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
             "|" + "---|" * len(TABLE_COLUMNS)]
    for report in reports:
        cells = []
        for key, _ in TABLE_COLUMNS:
            value = _flat(report).get(key)
            if value is None:
                cells.append("-")
            elif isinstance(value, dict):
                cells.append(", ".join(f"{k} x{v}" for k, v in value.items()) or "none")
            elif key.endswith("_bytes"):
                cells.append(f"{value / 1e6:.2f}")
            elif key in ("logit_max_rel_error", "compiled_model_max_abs_diff"):
                cells.append(f"{value:.1e}")
            elif isinstance(value, float):
                cells.append(f"{value:.4f}" if value <= 1.0 else f"{value:.2f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(reports: Sequence[dict], output: str | os.PathLike) -> list[str]:
    """Writes `output` (JSON), `<stem>.md` and `<stem>.png`, each atomically; returns the paths.

    The JSON is always `{"variants": [one report per variant]}`, however many there are;
    with one variant its report's keys are also at the top level, where readers of the
    one-variant reports written before "variants" was always present find them.
    """
    output = os.fspath(output)
    stem = os.path.splitext(output)[0]
    payload = {"variants": list(reports)}
    if len(reports) == 1:
        payload = {**reports[0], **payload}
    paths = [output, stem + ".md", stem + ".png"]
    file_paths.write_text(paths[0], json.dumps(payload, indent=2, sort_keys=True))
    file_paths.write_text(paths[1], markdown_table(reports))
    with file_paths.replaced_atomically(paths[2], suffix=".png") as temporary:
        plot_variants(reports, temporary)
    return paths


def plot_variants(reports: Sequence[dict], path: str) -> None:
    """Bars of size, latency and top-1 agreement (or accuracy) per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in reports]
    quality_key = "agreement_top1" if all("agreement_top1" in r for r in reports) else "top1"
    panels = [
        ("size (MB)", [r["size_bytes"] / 1e6 for r in reports]),
        ("median latency (ms)", [r["latency_ms"]["median"] for r in reports]),
        (quality_key.replace("_", " "), [r[quality_key] for r in reports]),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for axis, (title, values) in zip(axes, panels):
        axis.bar(range(len(names)), values, color="tab:blue")
        axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def _flat(report: dict) -> dict:
    flat = dict(report)
    latency = report.get("latency_ms") or {}
    flat["latency_median"], flat["latency_p90"] = latency.get("median"), latency.get("p90")
    delegation = report.get("xnnpack") or {}
    flat["xnnpack_partitions"] = delegation.get("partitions")
    flat["ops_outside_xnnpack"] = delegation.get("ops_outside")
    flat["compiled_model_max_abs_diff"] = (report.get("compiled_model") or {}).get("max_abs_diff")
    flat["fp16_agreement_top1"] = (report.get("fp16_arithmetic") or {}).get("agreement_top1")
    flat["gpu_status"] = gpu_status(report["gpu"]) if "gpu" in report else None
    return flat


def gpu_status(check: dict) -> str:
    """One cell for a `gpu_accelerator_check` result: whole / refused ops / no device."""
    if not check.get("device"):
        return "no device"
    if check.get("compiled") and check.get("fully_accelerated"):
        return "whole graph"
    refused = "; ".join(op.split(":")[0] for op in check.get("unsupported_ops", []))
    return f"refused ({refused})" if refused else f"failed: {check.get('error')}"
