"""The code follows setup.cfg's flake8 settings: no unused or undefined names, lines of at
most 100 columns, pycodestyle's layout rules (E203 aside: slice spacing is black's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("keras_squeezetime", "training", "tflite", "benchmarks", "examples", "tests")


def test_flake8_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", *CHECKED], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and not result.stdout, result.stdout[-4000:] + result.stderr
