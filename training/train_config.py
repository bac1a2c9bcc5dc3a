"""What one training run is: `TrainConfig` (the flags) resolved against its recipe.

`resolve_recipe(config)` applies a run's overrides to `recipes.RECIPES[config.config]`
(epochs first: warm-up and milestones keep their fractions) and checks the result;
`pipeline_config` turns the resolved recipe into the input pipeline's settings.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from keras_squeezetime.training.recipes import Recipe, get_recipe


class SetupError(ValueError):
    """Settings or inputs that make the run impossible (the CLI reports these without a trace)."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of one training run; `None` fields take the recipe's (`config`) value.

    Attributes:
      train_data: TFRecord glob pattern(s), comma-separated, local or `gs://`.
      output: run folder (local or `gs://`).
      config: recipe: "kinetics400", "kinetics600", "hmdb51" or "custom".
      val_data: validation TFRecord pattern(s); None trains without validation.
      num_classes: classes (required for "custom").
      labels: class names: built-in list name or text file (one per line).
      frames, frame_interval, image_size, short_side: clip sampling and size.
      width_multiplier: channel width factor of the model.
      epochs: training epochs; warm-up and milestones stretch with it (`Recipe.scaled_to`).
      batch_size: global batch (all replicas and workers together).
      optimizer: "sgd" or "adamw" (see `Recipe`).
      lr: learning rate per 64 clips (scaled to `batch_size` by the recipe's rule).
      warmup_epochs: warm-up length (cosine schedule).
      weight_decay: coupled L2 decay; clip_norm: global gradient-norm clip (0: none).
      backbone_lr_multiplier: learning-rate factor of all but the head.
      dropout_rate: dropout before the classifier.
      hflip: random horizontal flips (off for direction-dependent classes).
      crop_scales, color_jitter, random_erasing: the recipe's augmentation (see `Recipe`).
      augment: the recipe's augmentation; off: centre crop only (flips stay per `hflip`).
      shuffle_frames: shuffle the frames of every clip (train and val): the control run
        that shows what the model learns without temporal order.
      init_weights: preset or checkpoint path; "none" for random; None for the recipe's.
      steps_per_epoch: None counts the training records (manifest.json when present).
      validation_steps: None evaluates the whole validation set.
      strategy: "default", "mirrored", "multi_worker" or "tpu"; tpu: TPU name/address.
      mixed_precision: bfloat16 compute (float16 on GPUs); variables stay float32.
      jit_compile: compile the train step with XLA.
      seed: seed of weights, data order and augmentation; None draws one.
      deterministic: reproducible data order (slower input pipeline).
      data_threads: private tf.data threads (None: TensorFlow's pools).
      early_stopping_patience: stop after this many epochs without a better validation
        accuracy and keep the best epoch's weights (None or 0: run every epoch).
    """

    train_data: str
    output: str
    config: str = "custom"
    val_data: str | None = None
    num_classes: int | None = None
    labels: str | None = None
    frames: int | None = None
    frame_interval: int | None = None
    image_size: int | None = None
    short_side: int | None = None
    width_multiplier: float = 1.0
    epochs: int | None = None
    batch_size: int = 8
    optimizer: str | None = None
    lr: float | None = None
    warmup_epochs: float | None = None
    weight_decay: float | None = None
    clip_norm: float | None = None
    backbone_lr_multiplier: float | None = None
    dropout_rate: float | None = None
    hflip: bool | None = None
    crop_scales: Sequence[float] | None = None
    color_jitter: bool | None = None
    random_erasing: float | None = None
    augment: bool = True
    shuffle_frames: bool = False
    init_weights: str | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    strategy: str = "default"
    tpu: str = ""
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int | None = None
    deterministic: bool = False
    data_threads: int | None = None
    early_stopping_patience: int | None = None


def resolve_recipe(config: TrainConfig) -> Recipe:
    """The recipe of `config.config` with the run's overrides applied and epochs scaled."""
    recipe = get_recipe(config.config)
    if config.epochs is not None:
        if config.epochs < 1:
            raise SetupError(f"epochs must be >= 1; got {config.epochs}.")
        recipe = recipe.scaled_to(config.epochs)
    overrides = {
        "num_classes": config.num_classes,
        "frames": config.frames,
        "frame_interval": config.frame_interval,
        "image_size": config.image_size,
        "short_side": config.short_side,
        "optimizer": config.optimizer,
        "lr_per_64": config.lr,
        "warmup_epochs": config.warmup_epochs,
        "weight_decay": config.weight_decay,
        "clip_norm": config.clip_norm,
        "backbone_lr_multiplier": config.backbone_lr_multiplier,
        "dropout_rate": config.dropout_rate,
        "hflip": config.hflip,
        "crop_scales": tuple(float(s) for s in config.crop_scales)
        if config.crop_scales else None,
        "color_jitter": config.color_jitter,
        "random_erasing": config.random_erasing,
    }
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if config.init_weights is not None:
        init = None if config.init_weights.lower() == "none" else config.init_weights
        recipe = dataclasses.replace(recipe, init_weights=init)
    if config.labels is not None:
        recipe = dataclasses.replace(recipe, labels=config.labels or None)  # "": no names
    check_recipe(recipe, config)
    return recipe


def record_patterns(value: str) -> list[str]:
    """The comma-separated patterns of a `--train-data` or `--val-data` value."""
    return [p.strip() for p in value.split(",") if p.strip()]


def check_recipe(recipe: Recipe, config: TrainConfig) -> None:
    """Raises `SetupError` naming the flag of a setting no run can have."""
    if recipe.num_classes is None or recipe.num_classes < 1:
        raise SetupError(f"--config {recipe.name} needs --num-classes (>= 1).")
    if config.early_stopping_patience and not config.val_data:
        raise SetupError("--early-stopping-patience needs --val-data (it watches val_accuracy).")
    if recipe.image_size % 16:
        raise SetupError(f"--image-size must be a multiple of 16; got {recipe.image_size}.")
    if recipe.short_side < recipe.image_size:
        raise SetupError(
            f"--short-side ({recipe.short_side}) must be >= --image-size ({recipe.image_size})."
        )
    if config.batch_size < 1:
        raise SetupError(f"--batch-size must be >= 1; got {config.batch_size}.")
    if recipe.optimizer not in ("sgd", "adamw"):
        raise SetupError(f"--optimizer must be sgd or adamw; got {recipe.optimizer!r}.")
    if recipe.optimizer == "adamw" and recipe.backbone_lr_multiplier != 1.0:
        raise SetupError("--backbone-lr-multiplier needs --optimizer sgd.")
    if recipe.crop_scales is not None and not all(0 < s <= 1 for s in recipe.crop_scales):
        raise SetupError(f"--crop-scales must lie in (0, 1]; got {list(recipe.crop_scales)}.")
    if not 0 <= recipe.random_erasing <= 1:
        raise SetupError(f"--random-erasing must lie in [0, 1]; got {recipe.random_erasing}.")
    if config.width_multiplier <= 0:
        raise SetupError(f"--width-multiplier must be > 0; got {config.width_multiplier}.")
    if recipe.frames < 1 or recipe.frame_interval < 1:
        raise SetupError("--frames and --frame-interval must be >= 1.")
    if not config.train_data or not record_patterns(config.train_data):
        raise SetupError("--train-data is required.")


def pipeline_config(config: TrainConfig, recipe: Recipe):
    """The `pipeline.PipelineConfig` of the run: geometry and the recipe's augmentation."""
    from keras_squeezetime.training import augment, pipeline  # TensorFlow: only when used

    return pipeline.PipelineConfig(
        frames=recipe.frames,
        frame_interval=recipe.frame_interval,
        image_size=recipe.image_size,
        short_side=recipe.short_side,
        hflip=recipe.hflip,
        multiscale_crop=config.augment,
        scales=recipe.crop_scales or augment.MULTISCALE_SCALES,
        color_jitter=config.augment and recipe.color_jitter,
        random_erasing=recipe.random_erasing if config.augment else 0.0,
        deterministic=config.deterministic,
        seed=config.seed,
        threads=config.data_threads,
    )


def mixed_policy(strategy: str) -> str:
    """Keras dtype policy of `--mixed-precision` on this machine."""
    import tensorflow as tf

    # float16 needs loss scaling and pays off only on GPUs; TPUs and CPUs compute bfloat16.
    return "mixed_float16" if tf.config.list_physical_devices("GPU") and strategy != "tpu" \
        else "mixed_bfloat16"
