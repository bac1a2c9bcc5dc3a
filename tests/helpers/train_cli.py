"""Runs `squeezetime-train` as a user would: its module in a fresh Python process."""

from __future__ import annotations

import os
import subprocess
import sys


def train_cli(*flags: str, timeout: float = 300, info_logs: bool = False
              ) -> subprocess.CompletedProcess:
    """The finished process of `squeezetime-train *flags` (stdout and stderr captured).

    info_logs: keep TensorFlow's C++ INFO lines (tests/conftest.py silences them).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0") if info_logs else None
    return subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.train", *flags],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
