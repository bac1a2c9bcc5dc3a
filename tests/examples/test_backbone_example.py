"""Smoke test of examples/backbone_in_functional_model.py on tiny settings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backbone_in_functional_model.py"


def test_backbone_example_trains_both_variants():
    # 32 px instead of the default 64 (the model takes 29 px and up): the same layers train.
    result = subprocess.run([sys.executable, str(EXAMPLE), "--image-size", "32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {
        freeze: int(count.replace(",", ""))
        for freeze, count in re.findall(r"freeze_backbone=(\w+): ([\d,]+) trainable", result.stdout)
    }
    # Frozen: only the new Dense layer (512 features x 3 classes + 3 biases) trains.
    assert counts["True"] == 512 * 3 + 3
    assert counts["False"] > 100 * counts["True"]
