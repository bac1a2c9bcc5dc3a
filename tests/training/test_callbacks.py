"""Tests of `keras_squeezetime.training.callbacks`: the run's callbacks in a real `fit`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime.training.callbacks import make_callbacks


class _ScriptedValidation(keras.callbacks.Callback):
    """Puts a given `val_accuracy` per epoch into the logs, as `MultiViewValidation` does,
    and keeps each epoch's kernel to compare with what early stopping restores."""

    def __init__(self, accuracies):
        super().__init__()
        self.accuracies, self.kernels = list(accuracies), []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.accuracies[epoch]
        logs["val_loss"] = 1.0 - self.accuracies[epoch]
        self.kernels.append(self.model.layers[-1].kernel.numpy())


def _fit(tmp_path, accuracies, patience):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    validation = _ScriptedValidation(accuracies)
    callbacks = make_callbacks(str(tmp_path / "run"), str(tmp_path / "backup"), chief=True,
                               has_val=True, validation=validation,
                               early_stopping_patience=patience)
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 2)), batch_size=8,
                        epochs=len(accuracies), callbacks=callbacks, verbose=0)
    return model, validation, history


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(tmp_path):
    # Best at epoch 2 (index 1); two epochs without improvement end the run after epoch 4.
    model, validation, history = _fit(tmp_path, [0.5, 0.8, 0.7, 0.8, 0.9, 0.9], patience=2)
    assert history.epoch == [0, 1, 2, 3]
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), validation.kernels[1])
    assert not np.array_equal(validation.kernels[1], validation.kernels[3])  # weights moved


def test_without_patience_every_epoch_runs(tmp_path):
    model, validation, history = _fit(tmp_path, [0.5, 0.8, 0.7, 0.6, 0.6], patience=None)
    assert history.epoch == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), validation.kernels[-1])


def test_early_stopping_needs_validation(tmp_path):
    with pytest.raises(ValueError, match="validation"):
        make_callbacks(str(tmp_path), str(tmp_path / "b"), chief=True, has_val=False,
                       early_stopping_patience=2)


def test_patience_keeps_the_best_epoch_when_every_epoch_runs(tmp_path):
    model, validation, history = _fit(tmp_path, [0.5, 0.9, 0.8], patience=5)
    assert history.epoch == [0, 1, 2]
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), validation.kernels[1])


class _Killed(Exception):
    pass


class _KillAtEpochEnd(keras.callbacks.Callback):
    """Ends the run at the end of `epoch`, after the history row and the checkpoints are
    written but before the backup is (a kill between them)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed()


def test_a_resumed_run_keeps_its_best_checkpoint_until_an_epoch_beats_it(tmp_path):
    from keras_squeezetime.training import run_folder

    output, backup = str(tmp_path / "run"), str(tmp_path / "run" / "backup")
    accuracies = [0.5, 0.9, 0.6, 0.7]  # best at epoch 1; the resumed epochs are worse
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    validation = _ScriptedValidation(accuracies)
    callbacks = make_callbacks(output, backup, chief=True, has_val=True, validation=validation)
    callbacks.insert(-1, _KillAtEpochEnd(2))
    with pytest.raises(_Killed):
        model.fit(x, y, batch_size=8, epochs=4, callbacks=callbacks, verbose=0)
    best_kernel = validation.kernels[1]

    resume = run_folder.resume_epoch(backup)
    assert resume == 2  # epoch 2 is replayed
    run_folder.trim_history(f"{output}/history.csv", resume)
    assert run_folder.best_so_far(f"{output}/history.csv", "val_accuracy") == 0.9
    validation = _ScriptedValidation(accuracies)
    validation.kernels = [None, None]
    callbacks = make_callbacks(output, backup, chief=True, has_val=True, validation=validation,
                               resumed=True)
    model.fit(x, y, batch_size=8, epochs=4, callbacks=callbacks, verbose=0)
    assert len(validation.kernels) == 4  # epochs 2 and 3 ran
    best = keras.saving.load_model(f"{output}/checkpoints/best.keras")
    np.testing.assert_array_equal(best.layers[-1].kernel.numpy(), best_kernel)
