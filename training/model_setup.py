"""The model a run trains and how: build and initialise it, its optimizer, schedule, metrics.

Initialisation (`--init-weights`, or the recipe's) goes through the one loader,
`keras_squeezetime.model_loading.load_weights_into`: a preset, an official `.pth`, a
`.keras` file, a model folder or a `.weights.h5` with its `config.json`; a head of another
class count stays fresh (fine-tuning), anything else that does not fit is an error.
"""

from __future__ import annotations

from absl import logging

import keras

from keras_squeezetime import SqueezeTime
from keras_squeezetime.architecture import HEAD_PREFIX
from keras_squeezetime.model_loading import load_weights_into
from keras_squeezetime.presets import PresetDownloadError
from keras_squeezetime.training.optimizer import AdamW, TorchSGD
from keras_squeezetime.training.recipes import Recipe
from keras_squeezetime.training.schedules import MultiStepDecay, WarmupCosineDecay
from keras_squeezetime.training.train_config import SetupError

OPTIMIZER_FORMS = {
    "sgd": "SGD (PyTorch form: coupled L2 weight decay, momentum buffer)",
    "adamw": "AdamW (Keras: decoupled weight decay)",
}


def build_model(recipe: Recipe, width_multiplier: float = 1.0) -> keras.Model:
    """The SqueezeTime model of the recipe, initialised from `recipe.init_weights`.

    Raises:
      SetupError: the weights do not fit the model (names the variable and both shapes),
        or a preset is neither cached nor downloadable.
      FileNotFoundError: `init_weights` is neither a preset nor an existing path.
    """
    model = SqueezeTime(
        input_shape=(recipe.frames, recipe.image_size, recipe.image_size, 3),
        num_classes=recipe.num_classes,
        width_multiplier=width_multiplier,
        dropout_rate=recipe.dropout_rate,
    )
    if recipe.init_weights:
        try:
            report = load_weights_into(model, recipe.init_weights)
        except (ValueError, PresetDownloadError) as error:  # the latter: a preset offline
            raise SetupError(f"--init-weights {recipe.init_weights}: {error}") from error
        logging.info("Initialised from %s: %d loaded, %d left fresh.", recipe.init_weights,
                     len(report["loaded"]), len(report["skipped"]))
    return model


def make_optimizer(
    recipe: Recipe, global_batch: int, steps_per_epoch: int
) -> keras.optimizers.Optimizer:
    """The recipe's optimizer with its schedule, scaled to `global_batch`."""
    schedule = make_schedule(recipe, global_batch, steps_per_epoch)
    if recipe.optimizer == "adamw":
        return AdamW(
            learning_rate=schedule, weight_decay=recipe.weight_decay,
            global_clipnorm=recipe.clip_norm or None,
        )
    multipliers = {}
    if recipe.backbone_lr_multiplier != 1.0:
        multipliers = {"": recipe.backbone_lr_multiplier, HEAD_PREFIX: 1.0}
    return TorchSGD(
        learning_rate=schedule,
        momentum=recipe.momentum,
        l2_decay=recipe.weight_decay,
        lr_multipliers=multipliers,
        global_clipnorm=recipe.clip_norm or None,
    )


def make_schedule(
    recipe: Recipe, global_batch: int, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The recipe's learning-rate schedule in optimizer steps."""
    peak = recipe.learning_rate(global_batch)
    if recipe.schedule == "cosine":
        return WarmupCosineDecay(
            peak, steps_per_epoch, recipe.epochs, recipe.warmup_epochs,
            recipe.warmup_factor, final_learning_rate=recipe.final_lr,
        )
    if recipe.schedule == "multistep":
        return MultiStepDecay(peak, steps_per_epoch, recipe.milestones, recipe.gamma)
    raise SetupError(f"Unknown schedule {recipe.schedule!r}.")


def compile_for_training(model: keras.Model, recipe: Recipe, batch_size: int,
                         steps_per_epoch: int, jit_compile: bool = False) -> None:
    """Compiles `model` with the recipe's optimizer, the loss and `training_metrics`, and
    builds the optimizer (call inside the strategy's scope).

    Keras otherwise builds the optimizer inside the first traced step, and a step that
    creates variables is traced twice: building it here shortens the first step's wait
    (`benchmarks/first_step.py`; figures in docs/training.md, "The first step").
    """
    model.compile(
        optimizer=make_optimizer(recipe, batch_size, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=training_metrics(recipe.num_classes),
        jit_compile=jit_compile,
    )
    model.optimizer.build(model.trainable_variables)


def training_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """Top-1 accuracy, and top-5 when there are more than five classes."""
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes > 5:  # top-5 of five classes or fewer is always 1
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    return metrics
