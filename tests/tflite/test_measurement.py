"""Latency and peak memory as the harness reports them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("measure")
    calibration, _ = tiny.clips(32, seed=11)
    return {q: export_tflite(tiny.folded, folder / f"{q}.tflite", q, "uint8",
                             calibration if q == "int8" else None, input_layout="stacked").path
            for q in ("float32", "int8")}


def test_peak_memory_follows_the_weights(files):
    """The model's added resident memory in a bare process: the float32 file holds ~3.4x
    the int8 file's weights (9.1 vs 2.7 MB), and XNNPACK packs them again."""
    from keras_squeezetime.tflite.measurement import peak_memory_bytes

    peaks = {q: peak_memory_bytes(path, threads=1) for q, path in files.items()}
    weights = {q: os.path.getsize(path) for q, path in files.items()}
    assert peaks["int8"] > weights["int8"] / 2, peaks  # the weights are (at least) mapped in
    assert peaks["float32"] > peaks["int8"] + 0.5 * (weights["float32"] - weights["int8"]), peaks


def test_latency_round_robin(files, tiny):
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.measurement import measure_latency

    models = [LiteRTModel(path, threads=1) for path in files.values()]
    clip, _ = tiny.clips(1, seed=3)
    rows = measure_latency(models, clip[0], runs=4, warmup=1)
    assert len(rows) == 2
    for row in rows:
        assert row["runs"] == 4 and 0 < row["median"] <= row["p90"]


def test_a_memory_probe_that_does_not_finish_is_an_error(files, monkeypatch):
    from keras_squeezetime.tflite import measurement

    monkeypatch.setattr(measurement, "_PROBE_TIMEOUT_S", 0.01)
    with pytest.raises(RuntimeError, match=r"^Memory probe of .* did not finish in 0.01 s"):
        measurement.peak_memory_bytes(next(iter(files.values())))
