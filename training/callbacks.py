"""Callbacks of a training run: learning rate and multi-view validation into the logs,
TensorBoard scalars, history, checkpoints and the backup a killed run resumes from.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_squeezetime.labels import rank_classes
from keras_squeezetime.model_config import CHECKPOINTS_FOLDER
from keras_squeezetime.training import run_folder
from keras_squeezetime.training.evaluate import predict_views


class LogLearningRate(keras.callbacks.Callback):
    """Adds the learning rate in effect at the end of each epoch to the logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate
            ))


class MultiViewValidation(keras.callbacks.Callback):
    """Validation in several views per video (HMDB51's 2 clips x 3 crops), each epoch.

    `fit` validates one clip per example; a recipe whose validation protocol has several
    views per video scores the videos here instead, as `squeezetime-evaluate` does
    (`evaluate.predict_views`: the views' probabilities averaged per video), and puts
    `val_loss`, `val_accuracy` (and `val_top5` with more than five classes) into the logs
    that the history, TensorBoard and the best checkpoint read.

    Args:
      dataset: `train_data.validation_dataset(..., views=views)` batches,
        `(B, clips * crops, T, S, S, 3)` and labels.
      num_views: clips x crops.
      steps: batches per validation (None: all).
      top5: also log `val_top5`.
    """

    def __init__(self, dataset, num_views: int, steps: int | None = None, top5: bool = False):
        super().__init__()
        self.dataset, self.num_views, self.steps, self.top5 = dataset, num_views, steps, top5

    def scores(self) -> dict[str, float]:
        """`val_loss`, `val_accuracy` (and `val_top5`) of the current model."""
        probabilities, labels = [], []
        for step, (clips, batch_labels) in enumerate(self.dataset):
            if self.steps is not None and step >= self.steps:
                break
            probabilities.append(predict_views(self.model, clips, self.num_views))
            labels.append(np.asarray(batch_labels))
        probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
        picked = probabilities[np.arange(len(labels)), labels]
        # Keras' cross-entropy on probabilities clips them to [1e-7, 1 - 1e-7] too.
        scores = {"val_loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
                  "val_accuracy": float(np.mean(probabilities.argmax(axis=1) == labels))}
        if self.top5:
            top5 = rank_classes(probabilities)[:, :5]
            scores["val_top5"] = float(np.mean((top5 == labels[:, None]).any(axis=1)))
        return scores

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.scores())


class EpochSummaries(keras.callbacks.Callback):
    """TensorBoard scalars per epoch (`logs/train`, `logs/validation`, tags `epoch_<metric>`).

    The layout of `keras.callbacks.TensorBoard`, written with core TF ops: that callback
    needs the `tensorboard` package at run time, which training does not otherwise need.
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._writers: dict[str, Any] = {}
        from tensorflow.core.framework import summary_pb2

        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if split not in self._writers:
                self._writers[split] = tf.summary.create_file_writer(f"{self.log_dir}/{split}")
            with self._writers[split].as_default():
                tf.summary.write(
                    f"epoch_{name}", tf.constant(float(value)), step=epoch, metadata=self._metadata
                )
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


def make_callbacks(
    output: str,
    backup_dir: str,
    chief: bool,
    has_val: bool,
    validation: keras.callbacks.Callback | None = None,
    early_stopping_patience: int | None = None,
    resumed: bool = False,
) -> list[keras.callbacks.Callback]:
    """The run's callbacks, in the order they must run: learning rate and validation
    scores into the logs first (`validation`: a `MultiViewValidation`, or None when `fit`
    validates), then history, TensorBoard, checkpoints, early stopping on validation
    accuracy (`early_stopping_patience` epochs without improvement; the best epoch's
    weights are restored when training ends, stopped early or not) and the backup last.

    A resumed run (`resumed`) keeps its best checkpoint unless an epoch beats the best
    value in its history; early stopping's count starts afresh (`BackupAndRestore` keeps
    the model and optimizer, not callback state). The backup keeps the previous epoch's
    copy too, for a kill while it is written (`run_folder.resume_epoch`)."""
    # Order matters: the CSV row is written before the backup, so a kill in between replays
    # that epoch and `_trim_history` drops its stale row.
    callbacks: list[keras.callbacks.Callback] = [LogLearningRate()]
    if validation is not None:
        callbacks.append(validation)
    if chief:
        monitor = "val_accuracy" if has_val else "accuracy"
        best = (run_folder.best_so_far(f"{output}/{run_folder.HISTORY_FILE}", monitor)
                if resumed else None)
        checkpoints = f"{output}/{CHECKPOINTS_FOLDER}"
        tf.io.gfile.makedirs(checkpoints)
        callbacks += [
            keras.callbacks.CSVLogger(f"{output}/{run_folder.HISTORY_FILE}", append=True),
            EpochSummaries(f"{output}/logs"),
            keras.callbacks.ModelCheckpoint(
                f"{checkpoints}/best.keras", monitor=monitor, mode="max",
                save_best_only=True, initial_value_threshold=best,
            ),
            keras.callbacks.ModelCheckpoint(f"{checkpoints}/last.keras"),
        ]
    if early_stopping_patience:
        if not has_val:
            raise ValueError("early_stopping_patience needs validation data.")
        # Every worker stops at the same epoch: they all see the same validation logs.
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=early_stopping_patience,
            restore_best_weights=True, verbose=1))
    callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=backup_dir,
                                                      double_checkpoint=True))
    return callbacks
