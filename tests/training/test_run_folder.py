"""`run_folder`: resuming from a backup a kill left half-written, and the best value so far."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest

from keras_squeezetime.training import run_folder
from keras_squeezetime.training.train_config import SetupError


def _backup(folder, epoch: int, previous_epoch: int | None) -> None:
    """A backup as `BackupAndRestore(double_checkpoint=True)` leaves it: real weight files."""
    folder.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for suffix, value in (("", epoch), (".bkp", previous_epoch)):
        if value is None:
            continue
        model.layers[-1].kernel.assign(np.full((3, 2), value, "float32"))
        saved = folder / f"epoch{value}.weights.h5"  # Keras wants this suffix
        model.save_weights(str(saved))
        shutil.move(saved, folder / f"latest.weights.h5{suffix}")
        (folder / f"training_metadata.json{suffix}").write_text(
            json.dumps({"epoch": value, "batch": 0}))


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_an_intact_backup_resumes_at_its_epoch(tmp_path):
    _backup(tmp_path, epoch=3, previous_epoch=2)
    assert run_folder.resume_epoch(str(tmp_path)) == 3
    assert run_folder.resume_epoch(str(tmp_path / "none")) is None


def test_weights_half_written_resume_from_the_epoch_before(tmp_path, caplog):
    _backup(tmp_path, epoch=3, previous_epoch=2)
    _truncate(tmp_path / "latest.weights.h5")
    with caplog.at_level("WARNING"):
        assert run_folder.resume_epoch(str(tmp_path)) == 2
    assert "resuming from the copy of epoch 2" in caplog.text
    # The copy took the backup's place, so Keras' restore reads epoch 2's weights.
    assert ((tmp_path / "latest.weights.h5").read_bytes()
            == (tmp_path / "latest.weights.h5.bkp").read_bytes())
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 2
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.load_weights(str(tmp_path / "latest.weights.h5"))
    np.testing.assert_array_equal(model.layers[-1].kernel.numpy(), np.full((3, 2), 2.0))


def test_metadata_half_written_resumes_from_the_epoch_before(tmp_path):
    _backup(tmp_path, epoch=3, previous_epoch=2)
    (tmp_path / "training_metadata.json").write_text('{"epo')
    assert run_folder.resume_epoch(str(tmp_path)) == 2


def test_no_intact_copy_is_a_clear_error(tmp_path):
    _backup(tmp_path, epoch=1, previous_epoch=None)  # the first epoch has no copy
    _truncate(tmp_path / "latest.weights.h5")
    with pytest.raises(SetupError, match=r"damaged .* no intact copy of the epoch before; "
                                         r"delete .* to start the run over"):
        run_folder.resume_epoch(str(tmp_path))


def test_weights_without_metadata_are_removed(tmp_path):
    """Killed while the first epoch's backup was written: nothing to resume, and Keras must
    not restore those weights into a run that starts at epoch 0."""
    _backup(tmp_path, epoch=1, previous_epoch=None)
    (tmp_path / "training_metadata.json").unlink()
    assert run_folder.resume_epoch(str(tmp_path)) is None
    assert not (tmp_path / "latest.weights.h5").exists()


def test_best_so_far_reads_the_monitored_column(tmp_path):
    history = tmp_path / "history.csv"
    assert run_folder.best_so_far(str(history), "val_accuracy") is None
    history.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.4\n1,0.6,0.8\n2,0.9,0.7\n")
    assert run_folder.best_so_far(str(history), "val_accuracy") == 0.8
    assert run_folder.best_so_far(str(history), "accuracy") == 0.9


def test_metrics_number_the_best_epoch_as_history_csv_does():
    """A run resumed after 2 epochs ran epochs 2 and 3 (history.csv's `epoch` column, from
    0); epoch 3 validated best: `best_epoch_this_run` is that row's number."""
    history = keras.callbacks.History()
    history.epoch = [2, 3]
    history.history = {"loss": [1.0, 0.9], "val_accuracy": [0.4, 0.6]}
    metrics = run_folder.final_metrics(history, resume_epoch=2, seconds=2.0, steps=3, batch=4)
    assert metrics["best_epoch_this_run"] == 3 and metrics["best_val_accuracy_this_run"] == 0.6
    assert metrics["epochs_completed"] == 4 and metrics["resumed_from_epoch"] == 2
    assert metrics["epochs_this_run"] == 2
