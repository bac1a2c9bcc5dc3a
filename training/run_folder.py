"""A training run's folder: `config.json` (through `model_config`), history, metrics, resume.

`config.json` is a `keras_squeezetime.model_config.ModelConfig`: the model (frames, frame
interval, image size, short side, classes and their names, width) and the recipe's
validation and test protocols in its fields, and in `extra`, written at the top level as
before, every `TrainConfig` flag, the resolved recipe and the run's facts (learning rate
after scaling, steps per epoch, replicas, versions).

A run folder whose `backup/` holds Keras' `BackupAndRestore` state is resumed after its last
finished epoch, provided the settings in `RESUME_KEYS` are those of the run it resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

from absl import logging
import keras
import tensorflow as tf

from keras_squeezetime import file_paths
from keras_squeezetime.model_config import (
    CONFIG_FILE,
    DEFAULT_IMAGE_SIZE,
    KERAS_MODEL_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    read_model_config,
    scaled_crop,
    write_model_config,
)
from keras_squeezetime.training import strategy as strategy_lib
from keras_squeezetime.training.compat import BACKUP_METADATA, BACKUP_WEIGHTS, PREVIOUS_BACKUP
from keras_squeezetime.training.model_setup import OPTIMIZER_FORMS
from keras_squeezetime.training.recipes import Recipe
from keras_squeezetime.training.train_config import SetupError, TrainConfig

MODEL_FILE = KERAS_MODEL_FILE
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
__all__ = ["CONFIG_FILE", "HISTORY_FILE", "METRICS_FILE", "MODEL_FILE", "WEIGHTS_FILE",
           "RESUME_KEYS", "best_so_far", "check_resumable", "final_metrics", "resume_epoch",
           "run_model_config", "test_protocol", "trim_history", "write_json"]
# Settings a resumed run must share with the run it resumes.
RESUME_KEYS = (
    "config", "frames", "frame_interval", "image_size", "num_classes", "width_multiplier",
    "epochs", "batch_size", "learning_rate", "schedule", "steps_per_epoch",
)
_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"extra"}


def test_protocol(recipe: Recipe) -> tuple[int, int]:
    """`(test_short_side, test_image_size)` of the recipe at the run's image size.

    The recipes quote their test protocol for 224 px training crops (Kinetics: short side
    224, 224 crops; HMDB51: 286 and 286); a run at another size scales both by
    `image_size / 224`, as `ModelConfig.fixed_by_model` does for a resized model.
    """
    return scaled_crop(recipe.test_short_side, recipe.test_image_size,
                       recipe.image_size / DEFAULT_IMAGE_SIZE)


def run_model_config(
    config: TrainConfig,
    recipe: Recipe,
    strategy,
    steps: int,
    num_train: int,
    class_names: list[str] | None,
) -> ModelConfig:
    """The `ModelConfig` `config.json` holds for this run (see the module doc)."""
    settings = dataclasses.asdict(config)
    resolved = recipe.to_dict()
    resolved.pop("name")
    settings.update(resolved)
    settings.update(
        {
            "config": recipe.name,
            "epochs": recipe.epochs,
            "learning_rate": recipe.learning_rate(config.batch_size),
            "learning_rate_rule": (
                f"lr_per_64 * batch_size / 64 = {recipe.lr_per_64} * {config.batch_size} / 64"
                if recipe.optimizer == "sgd" else
                f"lr_per_64 * sqrt(batch_size / 64) = {recipe.lr_per_64} * "
                f"sqrt({config.batch_size} / 64)"
            ),
            "optimizer_form": OPTIMIZER_FORMS[recipe.optimizer],
            # config.json's short_side is validation's (ModelConfig): training's is here.
            "train_short_side": recipe.short_side,
            "steps_per_epoch": steps,
            "num_train_records": num_train,
            "num_replicas": strategy.num_replicas_in_sync,
            "num_workers": strategy_lib.num_workers(strategy),
            "tf_config": strategy_lib.task_summary(),
            "dtype_policy": keras.mixed_precision.dtype_policy().name,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
        }
    )
    test_short_side, test_image_size = test_protocol(recipe)
    extra = {k: v for k, v in settings.items() if k not in _MODEL_FIELDS}
    return ModelConfig(
        frames=recipe.frames,
        frame_interval=recipe.frame_interval,
        image_size=recipe.image_size,
        short_side=recipe.validation_short_side(),
        num_classes=recipe.num_classes,
        class_names=tuple(class_names) if class_names else None,
        width_multiplier=config.width_multiplier,
        val_views=recipe.val_views,
        test_views=recipe.test_views,
        test_short_side=test_short_side,
        test_image_size=test_image_size,
        extra=json.loads(json.dumps(extra)),  # tuples -> lists, as they come back from disk
    )


def resume_epoch(backup_dir: str) -> int | None:
    """The epoch a killed run resumes at (its backup's), or None when there is none.

    A kill while Keras wrote the backup leaves it half-written; the copy of the epoch
    before (`BackupAndRestore(double_checkpoint=True)` keeps one) then takes its place,
    with a warning. Weights without metadata (killed while the first epoch's backup was
    written) are removed: no epoch had finished.

    Raises:
      SetupError: the backup is damaged and so is (or there is no) copy of the epoch before.
    """
    metadata = f"{backup_dir}/{BACKUP_METADATA}"
    weights = f"{backup_dir}/{BACKUP_WEIGHTS}"
    epoch = _intact_backup_epoch(metadata, weights)
    if epoch is not None:
        return epoch
    if not tf.io.gfile.exists(metadata):
        if tf.io.gfile.exists(weights):
            tf.io.gfile.remove(weights)
        return None
    previous = _intact_backup_epoch(metadata + PREVIOUS_BACKUP, weights + PREVIOUS_BACKUP)
    if previous is None:
        raise SetupError(
            f"{backup_dir}: the backup of the last finished epoch is damaged (the run was "
            "killed while writing it) and there is no intact copy of the epoch before; delete "
            f"{backup_dir} to start the run over.")
    logging.warning("%s: the last backup is damaged (the run was killed while writing it); "
                    "resuming from the copy of epoch %d.", backup_dir, previous)
    tf.io.gfile.copy(weights + PREVIOUS_BACKUP, weights, overwrite=True)
    tf.io.gfile.copy(metadata + PREVIOUS_BACKUP, metadata, overwrite=True)
    return previous


def _intact_backup_epoch(metadata: str, weights: str) -> int | None:
    """The epoch of a backup whose metadata parses and whose weights read whole, else None."""
    try:
        with tf.io.gfile.GFile(metadata) as handle:
            epoch = int(json.load(handle)["epoch"])
    except (tf.errors.NotFoundError, ValueError, KeyError, TypeError):
        return None
    return epoch if _weights_read_whole(weights) else None


def _weights_read_whole(path: str) -> bool:
    """Whether every array of a `.weights.h5` reads (a truncated file fails here, as it
    would in Keras' restore). Remote files are only checked for existence."""
    if file_paths.is_remote(path):
        return tf.io.gfile.exists(path)
    import h5py

    def read(name, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(read)
    except (OSError, ValueError, KeyError, RuntimeError):
        return False
    return True


def best_so_far(history_path: str, monitor: str) -> float | None:
    """The best (largest) `monitor` value in a run's history, None without one: what a
    resumed run's best checkpoint must beat."""
    if not tf.io.gfile.exists(history_path):
        return None
    with tf.io.gfile.GFile(history_path) as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle)
                  if row.get(monitor) not in (None, "")]
    return max(values) if values else None


def check_resumable(output: str, config: ModelConfig) -> None:
    """Raises `SetupError` when `output`'s `config.json` differs in a `RESUME_KEYS` setting."""
    saved = read_model_config(f"{output}/{CONFIG_FILE}")
    if saved is None:
        return
    previous, current = saved.to_dict(), config.to_dict()
    changed = [k for k in RESUME_KEYS if previous.get(k) != current.get(k)]
    if changed:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise SetupError(
            f"{output} holds an unfinished run with other settings ({details}); "
            "use another --output, or delete its backup/ folder to start over."
        )


def write_run_config(output: str, config: ModelConfig) -> None:
    """Writes `config.json` (atomically, local or `gs://`)."""
    write_model_config(output, config)


def trim_history(path: str, first_epoch: int) -> None:
    """Keeps only rows of epochs before `first_epoch` (rows of a killed epoch would repeat)."""
    if not tf.io.gfile.exists(path):
        return
    if first_epoch == 0:
        tf.io.gfile.remove(path)
        return
    with tf.io.gfile.GFile(path) as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) < first_epoch]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(kept)
    file_paths.write_text(path, text.getvalue())


def final_metrics(history, resume_epoch: int | None, seconds: float, steps: int,
                  batch: int) -> dict[str, Any]:
    """`metrics.json`: the last epoch's logs, the best validation epoch, speed, resume.

    Epochs are numbered as in `history.csv` (Keras' numbering, from 0):
    `best_epoch_this_run` is the `epoch` of its row there. `epochs_completed` and
    `resumed_from_epoch` are counts of finished epochs, i.e. also the number of the next
    epoch (a run resumed from epoch 3 ran history.csv's epochs 3, 4, ...).
    """
    logs = {k: v[-1] for k, v in history.history.items() if v}
    epochs_run = len(history.epoch)
    metrics: dict[str, Any] = {k: float(v) for k, v in logs.items()}
    metrics.update(
        {
            "epochs_completed": (history.epoch[-1] + 1) if history.epoch else resume_epoch,
            "resumed_from_epoch": resume_epoch,
            "epochs_this_run": epochs_run,
            "train_seconds_this_run": round(seconds, 2),
            "train_clips_per_second": round(epochs_run * steps * batch / seconds, 2)
            if epochs_run else None,
        }
    )
    if "val_accuracy" in history.history:
        values = history.history["val_accuracy"]
        best = max(range(len(values)), key=values.__getitem__)
        metrics["best_val_accuracy_this_run"] = float(values[best])
        metrics["best_epoch_this_run"] = history.epoch[best]
    return metrics


def write_json(path: str, value: dict[str, Any]) -> None:
    """Writes `value` as indented JSON (local or `gs://`), atomically."""
    file_paths.write_text(path, json.dumps(value, indent=2, ensure_ascii=False))
