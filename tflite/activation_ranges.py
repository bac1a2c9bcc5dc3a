"""int8 activation ranges chosen for the smallest rounding-plus-clipping error (MSE).

The converter quantises each activation over the min/max it saw during calibration: one
rare outlier stretches the 256 levels over a wide range and every ordinary value is
rounded coarsely. Narrowing the range clips the outliers and rounds the rest finely;
`mse_ranges` picks, per tensor, the range whose int8 round trip is closest to the float
values (mean squared error) on calibration clips. Ops whose output scale is fixed (sigmoid,
softmax) or inherited (reshape, pad, pooling ...) keep theirs.
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.tflite.simulated_int8 import (
    quantized_graph_class,
    read_graph,
    write_ranges,
)

_BINS = 4096
# Candidate fractions of the calibrated max (and min, for tensors with negative values).
_FRACTIONS = np.linspace(0.25, 1.0, 31)


def mse_ranges(calibrated: bytes, clips: np.ndarray, batch_size: int = 8) -> tuple[bytes, dict]:
    """`(calibrated model with MSE ranges, summary)`; summary: `tensors`, `narrowed`,
    `median_width` (median new/old range width over the tensors).

    Args:
      calibrated: a calibrated float model (`export.calibrated_model`).
      clips: `(N, T, S, S, 3)` pixel clips (the calibration clips); 64-128 are plenty.
    """
    spec = read_graph(calibrated)
    graph = quantized_graph_class()(spec)
    graph.build(None)
    fixed = {op.outputs[0] for op in spec.ops if op.name in ("LOGISTIC", "SOFTMAX")}
    targets = [t for t in spec.rounded_tensors() if t in spec.ranges and t not in fixed]
    histograms = {t: np.zeros(_BINS) for t in targets}
    edges = {t: _edges(*spec.ranges[t]) for t in targets}
    for start in range(0, len(clips), batch_size):
        values = graph.run(np.asarray(clips[start:start + batch_size], np.float32), quantize=False)
        for t in targets:
            low, high = edges[t][0], edges[t][-1]
            data = np.clip(np.asarray(values[t]).ravel(), low, high)
            histograms[t] += np.histogram(data, bins=edges[t])[0]
    ranges, widths = {}, []
    for t in targets:
        low, high = _best_range(histograms[t], edges[t])
        old_low, old_high = min(spec.ranges[t][0], 0.0), max(spec.ranges[t][1], 0.0)
        if (low, high) != (old_low, old_high):
            ranges[t] = (low, high)
        widths.append((high - low) / max(old_high - old_low, 1e-12))
    summary = {"tensors": len(targets), "narrowed": len(ranges),
               "median_width": float(np.median(widths)) if widths else 1.0}
    return write_ranges(calibrated, ranges), summary


def _edges(low: float, high: float) -> np.ndarray:
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        high = low + 1e-6
    return np.linspace(low, high, _BINS + 1)


def _round_trip_error(centres, counts, low, high) -> float:
    """Mean squared error of int8 quantise-dequantise over `[low, high]` (0 included)."""
    scale = (high - low) / 255.0
    if scale <= 0:
        return float(np.sum(counts * centres**2))
    zero = np.round(-low / scale)  # the level holding 0, as the quantiser nudges it
    levels = np.clip(np.round(centres / scale) + zero, 0, 255)
    return float(np.sum(counts * ((levels - zero) * scale - centres) ** 2))


def _best_range(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    centres = (edges[:-1] + edges[1:]) / 2
    low, high = float(edges[0]), float(edges[-1])
    best = (_round_trip_error(centres, counts, low, high), low, high)
    for high_fraction in _FRACTIONS:
        for low_fraction in (_FRACTIONS if low < 0 else (1.0,)):
            candidate = (low * low_fraction, high * high_fraction)
            error = _round_trip_error(centres, counts, *candidate)
            if error < best[0]:
                best = (error, *candidate)
    return best[1], best[2]
