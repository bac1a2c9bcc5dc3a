"""The paper's training recipes as data (REFERENCE.md, "Training recipe").

A `Recipe` holds what the official configs fix per dataset: clip geometry, epochs, the
learning rate per 64 clips (scaled linearly with the global batch), the schedule, weight
decay, clipping and the initialisation. `squeezetime-train --config NAME` starts from
`RECIPES[NAME]`; every flag given on the command line overrides one field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The batch the per-batch learning rates of the official configs are quoted for.
REFERENCE_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One dataset's training recipe.

    Attributes:
      name: recipe name (`--config`).
      num_classes: classes of the dataset (None: must be given).
      labels: built-in class-name list, or None.
      frames, frame_interval, image_size, short_side: clip sampling and size.
      epochs: training epochs.
      lr_per_64: learning rate for a global batch of 64; scaled linearly.
      schedule: "cosine" (linear warm-up then cosine) or "multistep".
      warmup_epochs, warmup_factor: warm-up length and start (fraction of the peak).
      final_lr: cosine floor, absolute: the official configs' `eta_min = base_lr / 100`
        = 1.5e-4, which mmengine's `auto_scale_lr` does not scale with the batch.
      milestones, gamma: multistep drops (epochs) and factor.
      momentum: SGD momentum.
      weight_decay: coupled L2 decay (PyTorch SGD `weight_decay`).
      clip_norm: gradient clipping, global L2 norm.
      backbone_lr_multiplier: learning-rate factor of everything but the head.
      init_weights: preset or path to initialise from (None: random).
      val_views: (clips, crops) of validation; test_views: of the test protocol.
      test_short_side: short side of the test protocol.
    """

    name: str
    num_classes: int | None
    labels: str | None
    frames: int = 16
    frame_interval: int = 4
    image_size: int = 224
    short_side: int = 256
    epochs: int = 100
    lr_per_64: float = 0.015
    schedule: str = "cosine"
    warmup_epochs: float = 8.0
    warmup_factor: float = 0.1
    final_lr: float = 1.5e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 7e-5
    clip_norm: float = 40.0
    backbone_lr_multiplier: float = 1.0
    init_weights: str | None = "imagenet"
    val_views: tuple[int, int] = (1, 1)
    test_views: tuple[int, int] = (10, 3)
    test_short_side: int = 224

    def learning_rate(self, global_batch: int) -> float:
        """Peak learning rate for `global_batch` clips per step (linear scaling rule)."""
        return self.lr_per_64 * global_batch / REFERENCE_BATCH

    def scaled_to(self, epochs: int) -> "Recipe":
        """The recipe stretched to `epochs`: warm-up and milestones keep their fractions.

        So a short trial run keeps the schedule's shape (e.g. HMDB51's drops at 24% and 48%).
        """
        if epochs == self.epochs:
            return self
        ratio = epochs / self.epochs
        milestones = tuple(sorted({max(1, round(m * ratio)) for m in self.milestones}))
        return dataclasses.replace(
            self,
            epochs=epochs,
            warmup_epochs=min(self.warmup_epochs * ratio, epochs - 1e-3),
            milestones=tuple(m for m in milestones if m < epochs),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KINETICS400 = Recipe(name="kinetics400", num_classes=400, labels="kinetics400")
KINETICS600 = dataclasses.replace(
    KINETICS400, name="kinetics600", num_classes=600, labels="kinetics600", weight_decay=3e-5
)
HMDB51 = Recipe(
    name="hmdb51",
    num_classes=51,
    labels="hmdb51",
    epochs=50,
    lr_per_64=0.02,
    schedule="multistep",
    warmup_epochs=0.0,
    milestones=(12, 24),
    weight_decay=0.008,
    backbone_lr_multiplier=0.1,
    init_weights="kinetics400",
    val_views=(2, 3),
    test_views=(2, 3),
    test_short_side=286,
)
# Your own data: the Kinetics optimisation recipe from scratch; give --num-classes.
CUSTOM = dataclasses.replace(KINETICS400, name="custom", num_classes=None, labels=None,
                             init_weights=None)

RECIPES: dict[str, Recipe] = {r.name: r for r in (KINETICS400, KINETICS600, HMDB51, CUSTOM)}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; raises `ValueError` listing the valid names."""
    if name not in RECIPES:
        raise ValueError(f"Unknown config {name!r}; choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]
