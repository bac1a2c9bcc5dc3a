"""Training library behind `squeezetime-train`: `train(TrainConfig) -> metrics`.

One run writes to `output/`:

- `config.json` (`keras_squeezetime.model_config.ModelConfig`): the clip geometry, classes
  and width the exporter, predictor and evaluator read, the recipe's validation and test
  protocols (`val_views`, `test_views`, `test_short_side`, `test_image_size`), and every
  setting of `TrainConfig` with the resolved recipe (learning rate after scaling,
  schedule, decay, clipping, augmentation, initialisation);
- `history.csv` (one row per epoch), `logs/` (TensorBoard), `checkpoints/best.keras` and
  `checkpoints/last.keras`, `backup/` (`BackupAndRestore`, removed when the run finishes);
- at the end `model.keras` (the last epoch's model, uncompiled), `model.weights.h5` and
  `metrics.json`.

A killed run started again with the same `output` resumes after its last finished epoch:
weights, optimizer state (momentum, step count, hence the schedule) and the epoch counter
come back from `backup/`, and `history.csv` is cut to the epochs before the resumed one.

Under `multi_worker`, every worker runs this same function; only the chief writes the
outputs, the others keep a private backup (`backup/worker-<i>`) so that every worker can
resume.

The jobs live in their own modules: `train_config` (flags resolved against the recipe),
`model_setup` (model, initialisation, optimizer, schedule), `train_data` (datasets),
`callbacks`, `run_folder` (config.json, resume, metrics) and `compat` (private Keras/TF
calls); this module runs them in order and re-exports their public names.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from absl import logging

import keras
import tensorflow as tf

from keras_squeezetime import load_labels
from keras_squeezetime.training import compat, pipeline, strategy as strategy_lib
from keras_squeezetime.training.callbacks import MultiViewValidation, make_callbacks
from keras_squeezetime.training.class_names import check_record_class_names
from keras_squeezetime.training.model_setup import (
    build_model,
    compile_for_training,
    make_optimizer,
    make_schedule,
)
from keras_squeezetime.training.recipes import Recipe
from keras_squeezetime.training.run_folder import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    WEIGHTS_FILE,
    check_resumable,
    final_metrics,
    resume_epoch as find_resume_epoch,
    run_model_config,
    trim_history,
    write_json,
    write_run_config,
)
from keras_squeezetime.training.train_config import (
    SetupError,
    TrainConfig,
    mixed_policy,
    pipeline_config,
    record_patterns,
    resolve_recipe,
)
from keras_squeezetime.training.train_data import (
    count_records,
    shuffle_clip_frames,
    train_dataset,
    validation_dataset,
)

__all__ = [
    "CONFIG_FILE", "HISTORY_FILE", "METRICS_FILE", "MODEL_FILE", "WEIGHTS_FILE", "SetupError",
    "TrainConfig", "build_model", "count_records", "make_optimizer", "make_schedule",
    "resolve_recipe", "shuffle_clip_frames", "train", "train_dataset", "validation_dataset",
]


def train(config: TrainConfig) -> dict[str, Any]:
    """Trains (or resumes) one run and returns its final metrics (also in `metrics.json`).

    Raises:
      SetupError: inconsistent settings, `output` holds a different run to resume, a data
        file is a video list rather than TFRecords, or `--init-weights` cannot be had.
      FileNotFoundError: a data pattern matches no file.
    """
    recipe = resolve_recipe(config)
    train_files = _record_files(config.train_data)
    val_files = _record_files(config.val_data) if config.val_data else []
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy(mixed_policy(config.strategy))
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    strategy = strategy_lib.make_strategy(config.strategy, config.tpu)
    chief = strategy_lib.is_chief(strategy)
    per_replica = config.batch_size // strategy.num_replicas_in_sync
    if per_replica < 2:
        # Batch statistics of one clip: the temporal focus normalises one vector per clip,
        # which is then its bias alone (PyTorch refuses such a batch outright).
        raise SetupError(
            f"--batch-size {config.batch_size} gives {per_replica} clip per replica on "
            f"{strategy.num_replicas_in_sync} replica(s); batch normalisation needs at least "
            "2: raise --batch-size.")

    num_train, label_texts = count_records(train_files)
    steps = config.steps_per_epoch or num_train // config.batch_size
    if steps < 1:
        raise SetupError(
            f"{num_train} training clips make no full batch of {config.batch_size}; "
            "lower --batch-size or add data."
        )
    class_names = _class_names(recipe, label_texts)
    if val_files:
        num_val, val_texts = count_records(val_files)
        if class_names is not None:  # validation scores would be of mislabelled videos
            names_source = (f"--labels {recipe.labels}" if recipe.labels
                            else "the training records' class list")
            _check_names(class_names, val_texts, names_source, "the validation records")
    model_config = run_model_config(config, recipe, strategy, steps, num_train, class_names)
    output = config.output.rstrip("/")
    backup_dir = f"{output}/backup" if chief else (
        f"{output}/backup/worker-{strategy.cluster_resolver.task_id}"
    )
    resume_epoch = find_resume_epoch(backup_dir)
    if resume_epoch is None and tf.io.gfile.exists(f"{output}/{MODEL_FILE}"):
        raise SetupError(f"{output} holds a finished run ({MODEL_FILE}); use another --output.")
    if resume_epoch is not None:
        check_resumable(output, model_config)
        logging.info("Resuming %s after epoch %d.", output, resume_epoch)
    # Before anything is written: initial weights that cannot be had (a preset offline)
    # leave no run folder behind.
    with strategy.scope():
        model = build_model(recipe, config.width_multiplier)
        compile_for_training(model, recipe, config.batch_size, steps, config.jit_compile)
    tf.io.gfile.makedirs(output)
    if chief:
        write_run_config(output, model_config)
        trim_history(f"{output}/{HISTORY_FILE}", resume_epoch or 0)

    data_config = pipeline_config(config, recipe)
    train_data = train_dataset(train_files, config.batch_size, data_config, config.shuffle_frames)
    val_data, validation_steps, multi_view = None, config.validation_steps, None
    if val_files:
        val_data, validation_steps, multi_view = _validation(
            config, recipe, strategy, val_files, num_val, data_config)

    if config.strategy != "default":
        if strategy_lib.num_workers(strategy) > 1:
            compat.patch_multi_worker_reduction()
        size = recipe.image_size
        compat.build_before_fit(model, strategy, (
            tf.TensorSpec((config.batch_size, recipe.frames, size, size, 3), tf.float32),
            tf.TensorSpec((config.batch_size,), tf.int32),
        ))
    callbacks = make_callbacks(output, backup_dir, chief, bool(val_files), multi_view,
                               config.early_stopping_patience, resumed=resume_epoch is not None)
    started = time.monotonic()
    history = model.fit(
        train_data,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        validation_data=val_data,
        validation_steps=validation_steps if val_data is not None else None,
        callbacks=callbacks,
        verbose=2 if chief else 0,
        shuffle=False,  # the pipeline shuffles files and records; fit cannot shuffle tf.data
    )
    seconds = time.monotonic() - started
    metrics = final_metrics(history, resume_epoch, seconds, steps, config.batch_size)
    if chief:
        # Saved uncompiled: loading then needs only the model's layers, not this package's
        # optimizer and schedules (checkpoints/*.keras keep the training state).
        # One input and output, not lists: a list-input model warns at every call.
        keras.Model(model.input, model.output, name=model.name).save(f"{output}/{MODEL_FILE}")
        model.save_weights(f"{output}/{WEIGHTS_FILE}")
        write_json(f"{output}/{METRICS_FILE}", metrics)
    return metrics


def _validation(config: TrainConfig, recipe: Recipe, strategy, files: list[str], num_val: int,
                data_config):
    """`(validation_data for fit, its steps, MultiViewValidation or None)` of the recipe's
    validation protocol: `fit` scores one view per video; several views (HMDB51's 2 x 3 at
    short side 224) are scored per video by the callback."""
    multi_worker = strategy_lib.num_workers(strategy) > 1
    full_batches = strategy.num_replicas_in_sync > 1
    if full_batches and num_val < config.batch_size:
        raise SetupError(
            f"Validation under {config.strategy} needs at least one full batch: "
            f"{num_val} clips < --batch-size {config.batch_size}."
        )
    val_config = dataclasses.replace(data_config, short_side=recipe.validation_short_side())
    num_views = recipe.val_views[0] * recipe.val_views[1]
    if num_views > 1:
        # A batch holds batch_size videos of num_views clips each: keep the clip count.
        videos = max(1, config.batch_size // num_views)
        data = validation_dataset(files, videos, val_config, config.shuffle_frames,
                                  multi_worker=multi_worker, views=recipe.val_views)
        return None, None, MultiViewValidation(
            data, num_views, steps=config.validation_steps, top5=recipe.num_classes > 5)
    steps = config.validation_steps
    if steps is None and not multi_worker:
        # A known length spares Keras' "ran out of data" warning after each validation.
        rounding = math.floor if full_batches else math.ceil
        steps = rounding(num_val / config.batch_size)
    data = validation_dataset(
        files, config.batch_size, val_config, config.shuffle_frames,
        multi_worker=multi_worker, full_batches_only=full_batches,
    )
    return data, steps, None


def _class_names(recipe: Recipe, label_texts: dict[int, str]) -> list[str] | None:
    """The run's class names: --labels, checked against the names the records carry
    (`label_texts`, index -> name), else those names when they cover every class."""
    outside = sorted(i for i in label_texts if not 0 <= i < recipe.num_classes)
    if outside:
        raise SetupError(
            f"The training records use class index {outside[-1]} ({label_texts[outside[-1]]!r}) "
            f"but the model has {recipe.num_classes} classes (0..{recipe.num_classes - 1}): "
            "raise --num-classes.")
    if recipe.labels is not None:
        names = load_labels(recipe.labels)
        if len(names) != recipe.num_classes:
            raise SetupError(
                f"--labels {recipe.labels} has {len(names)} names for {recipe.num_classes} classes."
            )
        _check_names(names, label_texts, f"--labels {recipe.labels}", "the training records")
        return names
    missing = [i for i in range(recipe.num_classes) if i not in label_texts]
    if not missing:
        return [label_texts[i] for i in range(recipe.num_classes)]
    # Not an error (the run trains as well), but config.json then names no class.
    why = ("the training records carry no class names" if not label_texts else
           f"the training records name {recipe.num_classes - len(missing)} of the "
           f"{recipe.num_classes} classes (none for class index {missing[0]})")
    logging.warning("%s, so config.json gets no class_names and predictions show class "
                    "indices; pass --labels with the %d class names to name them.",
                    why, recipe.num_classes)
    return None


def _record_files(patterns: str) -> list[str]:
    """`pipeline.list_record_files` of a data flag; a video list given instead of TFRecords
    is a `SetupError` (said in one line)."""
    try:
        return pipeline.list_record_files(record_patterns(patterns))
    except ValueError as error:
        raise SetupError(str(error)) from error


def _check_names(names: list[str], label_texts: dict[int, str], names_source: str,
                 records_source: str) -> None:
    """`check_record_class_names`, its error a `SetupError` (the run stops before training)."""
    try:
        check_record_class_names(names, label_texts, names_source, records_source)
    except ValueError as error:
        raise SetupError(str(error)) from error
