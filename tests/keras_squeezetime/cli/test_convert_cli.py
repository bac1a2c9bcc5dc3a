"""`squeezetime-convert` in a subprocess: flags onto `convert_checkpoint`, clean errors."""

from __future__ import annotations

import os
import subprocess
import sys

from keras_squeezetime import SqueezeTime
from tests.helpers.parity import LOGITS_TOLERANCE, relative_error


def _convert(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keras_squeezetime.cli.convert", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_writes_loadable_weights_and_prints_how_to_load_them(parity, tmp_path):
    out = tmp_path / "fixture.weights.h5"
    result = _convert(parity["pth"], out, "--image-size", "112")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "width_multiplier=0.25" in result.stdout and f"weights={str(out)!r}" in result.stdout
    assert f"load_model({str(out)!r})" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["config.json", "fixture.weights.h5"]
    model = SqueezeTime(input_shape=(16, 112, 112, 3), width_multiplier=0.25, num_classes=10,
                        classifier_activation=None, include_preprocessing=False,
                        weights=str(out))
    assert relative_error(model.predict(parity["video"], verbose=0),
                          parity["logits"]) <= LOGITS_TOLERANCE


def test_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = _convert(bad, tmp_path / "o.weights.h5")
    assert result.returncode == 2
    assert "bad.pth" in result.stderr and "Traceback" not in result.stderr
    # Nothing partial is left behind: only the input remains.
    assert sorted(os.listdir(tmp_path)) == ["bad.pth"]
