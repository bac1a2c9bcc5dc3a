"""Fixtures for the model tests: the official parity fixture and small model configurations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The official parity fixture, inside the repository (tests/fixtures/README.md)."""
    return FIXTURES / "official_parity"


@pytest.fixture(scope="session")
def parity(parity_dir):
    """The official model's golden outputs, channels last, with its configuration."""
    stem = parity_dir / "squeezetime_w0.25_f16_112px"
    with np.load(f"{stem}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    config = json.loads(Path(f"{stem}.json").read_text())
    return {
        "pth": str(stem) + ".pth",
        "config": config,
        "video": np.transpose(arrays["video_ncthw"], (0, 2, 3, 4, 1)),
        "features": np.transpose(arrays["features_nchw"], (0, 2, 3, 1)),
        "logits": arrays["logits"],
    }
