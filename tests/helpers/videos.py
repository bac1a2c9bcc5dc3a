"""Independent references for video tests."""

from __future__ import annotations

import os

import av
import numpy as np


def decode_native(path: str | os.PathLike) -> np.ndarray:
    """Every frame at its stored size, decoded straight with PyAV (not the package's decoder)."""
    with av.open(os.fspath(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
