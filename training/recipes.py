"""The paper's training recipes as data (REFERENCE.md, "Training recipe").

A `Recipe` holds what the official configs fix per dataset: clip geometry, epochs, the
learning rate per 64 clips (scaled linearly with the global batch), the schedule, weight
decay, clipping and the initialisation. `squeezetime-train --config NAME` starts from
`RECIPES[NAME]`; every flag given on the command line overrides one field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_squeezetime import presets
from keras_squeezetime.model_config import (
    DEFAULT_FRAME_INTERVAL,
    DEFAULT_FRAMES,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SHORT_SIDE,
    ModelConfig,
    scaled_crop,
)

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
      optimizer: "sgd" (`TorchSGD`: PyTorch's SGD with coupled L2 decay, as the official
        configs) or "adamw" (Keras' AdamW, decoupled decay).
      lr_per_64: learning rate for a global batch of 64, scaled to the batch linearly for
        SGD (`lr_per_64 * batch / 64`, the official configs' rule) and by the square root
        for AdamW (`lr_per_64 * sqrt(batch / 64)`, the usual rule for Adam).
      schedule: "cosine" (linear warm-up then cosine) or "multistep".
      warmup_epochs, warmup_factor: warm-up length and start (fraction of the peak).
      final_lr: cosine floor, absolute: the official configs' `eta_min = base_lr / 100`
        = 1.5e-4, which mmengine's `auto_scale_lr` does not scale with the batch.
      milestones, gamma: multistep drops (epochs) and factor.
      momentum: SGD momentum.
      weight_decay: SGD: coupled L2 decay (PyTorch SGD `weight_decay`); AdamW: decoupled.
      clip_norm: gradient clipping, global L2 norm.
      backbone_lr_multiplier: learning-rate factor of everything but the head.
      init_weights: preset or path to initialise from (None: random).
      dropout_rate: dropout before the classifier.
      hflip: random horizontal flips in training.
      crop_scales: crop side / short side choices of the random multi-scale crop (None:
        the official configs' `(1, 0.875, 0.75, 0.66, 0.5)`, `augment.MULTISCALE_SCALES`).
      color_jitter: mmaction's `ColorJitter()` in training.
      random_erasing: probability of erasing a random rectangle of a training clip.
      val_views: (clips, crops) of validation; test_views: of the test protocol.
      val_short_side: short side of validation, quoted for 224 px crops (None: `short_side`,
        Kinetics' `Resize(-1, 256)`; HMDB51 validates at 224 with three 224 crops).
      test_short_side, test_image_size: short side and crop of the test protocol, quoted
        for 224 px training crops (a run at another size scales them).
    """

    name: str
    num_classes: int | None
    labels: str | None
    frames: int = DEFAULT_FRAMES
    frame_interval: int = DEFAULT_FRAME_INTERVAL
    image_size: int = DEFAULT_IMAGE_SIZE
    short_side: int = DEFAULT_SHORT_SIDE
    epochs: int = 100
    optimizer: str = "sgd"
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
    dropout_rate: float = 0.5
    hflip: bool = True
    crop_scales: tuple[float, ...] | None = None
    color_jitter: bool = True
    random_erasing: float = 0.25
    val_views: tuple[int, int] = ModelConfig.val_views
    val_short_side: int | None = None
    test_views: tuple[int, int] = ModelConfig.test_views
    test_short_side: int = ModelConfig.test_short_side
    test_image_size: int = ModelConfig.test_image_size

    def learning_rate(self, global_batch: int) -> float:
        """Peak learning rate for `global_batch` clips per step (see `lr_per_64`)."""
        ratio = global_batch / REFERENCE_BATCH
        return self.lr_per_64 * (ratio**0.5 if self.optimizer == "adamw" else ratio)

    def validation_short_side(self) -> int:
        """Short side of validation clips at this recipe's image size (see `val_short_side`)."""
        if self.val_short_side is None:
            return self.short_side
        return scaled_crop(self.val_short_side, DEFAULT_IMAGE_SIZE,
                           self.image_size / DEFAULT_IMAGE_SIZE)[0]

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


def _dataset_fields(name: str) -> dict[str, Any]:
    """What the official model of dataset `name` fixes (`presets.PRESETS`): its classes and
    evaluation protocol, so a run's config.json evaluates as the preset does."""
    meta = presets.PRESETS[name]
    protocol = dict(meta["protocol"])
    return {"num_classes": meta["num_classes"], "labels": meta["labels"],
            "val_short_side": protocol.pop("short_side", None), **protocol}


KINETICS400 = Recipe(name="kinetics400", **_dataset_fields("kinetics400"))
KINETICS600 = dataclasses.replace(
    KINETICS400, name="kinetics600", **_dataset_fields("kinetics600"), weight_decay=3e-5
)
HMDB51 = Recipe(
    name="hmdb51",
    **_dataset_fields("hmdb51"),
    epochs=50,
    lr_per_64=0.02,
    schedule="multistep",
    warmup_epochs=0.0,
    milestones=(12, 24),
    weight_decay=0.008,
    backbone_lr_multiplier=0.1,
    init_weights="kinetics400",
)
# Your own data, from scratch (no pretrained weights); give --num-classes. The official
# recipes fine-tune (Kinetics from ImageNet weights, HMDB51 from Kinetics): from random
# weights on a small set their augmentation and dropout keep SqueezeTime near chance for
# many epochs. AdamW, position-only crops, no colour jitter, no erasing, no dropout and no
# flips learn the synthetic order-only set (docs/training.md, BENCHMARKS.md): with
# mmaction's colour jitter the classes told apart by colour order stayed at chance.
CUSTOM = dataclasses.replace(
    KINETICS400,
    name="custom",
    num_classes=None,
    labels=None,
    init_weights=None,
    epochs=30,
    warmup_epochs=2.4,  # the official 8% of the epochs
    optimizer="adamw",
    lr_per_64=0.003,
    weight_decay=0.05,
    clip_norm=0.0,
    final_lr=1e-5,
    dropout_rate=0.0,
    hflip=False,
    crop_scales=(1.0,),  # random crops of the full short side: position jitter only
    color_jitter=False,
    random_erasing=0.0,
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (KINETICS400, KINETICS600, HMDB51, CUSTOM)}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; raises `ValueError` listing the valid names."""
    if name not in RECIPES:
        raise ValueError(f"Unknown config {name!r}; choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]
