"""Reference for how many classes a batch holds."""

from __future__ import annotations

import math
from typing import Sequence


def expected_distinct_classes(class_sizes: Sequence[int], batch: int) -> float:
    """Mean distinct classes in `batch` videos drawn at random without replacement from a
    set with `class_sizes` videos per class (1 - P(class absent), summed over classes)."""
    total = sum(class_sizes)
    return sum(1 - math.comb(total - n, batch) / math.comb(total, batch) for n in class_sizes)
