"""`squeezetime-train` end to end on tiny real TFRecords: outputs, config.json, resume, errors.

Data: synthetic H.264 videos (`generate_synthetic_dataset`) prepared into TFRecords by
`prepare_dataset`, 16 train and 8 validation clips of 12 frames at 48x64. Model: width 0.25,
4 frames of 32 px. Runs are subprocesses of the real console script.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import types
import warnings

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.training import optimizer  # noqa: F401  (loads checkpoints)
from keras_squeezetime.training.model_setup import build_model
from keras_squeezetime.training.recipes import CUSTOM
from tests.helpers.cli_runs import cli_runs
from tests.helpers.ctrl_c import answer_ctrl_c
from tests.helpers.train_cli import train_cli as _train_cli

TINY_FLAGS = [
    "--num-classes=8", "--frames=4", "--frame-interval=2", "--image-size=32", "--short-side=40",
    "--width-multiplier=0.25", "--batch-size=4", "--nohflip", "--seed=1", "--data-threads=1",
]


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory) -> dict[str, str]:
    """TFRecord patterns of 16 train / 8 val synthetic clips, plus the class file."""
    from keras_squeezetime.datasets import generate_synthetic_dataset
    from keras_squeezetime.training.annotations import parse_video_list
    from keras_squeezetime.training.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("tiny_data")
    summary = generate_synthetic_dataset(root / "videos", 2, 1, num_frames=12, height=48, width=64)
    patterns = {"classes": summary["classes_file"]}
    for split in ("train", "val"):
        entries = parse_video_list(summary[f"{split}_list"], root / "videos",
                                   summary["classes_file"])
        prepare_dataset(entries, str(root / split), short_side=None, max_frames=None, shard_size=8)
        patterns[split] = str(root / split / "*.tfrecord")
    return patterns


def test_labels_are_checked_against_the_names_the_records_carry(tmp_path):
    from keras_squeezetime.training.train import SetupError, _class_names

    recipe = dataclasses.replace(CUSTOM, num_classes=3, labels=None)
    records = {0: "walk", 1: "run", 2: "jump"}
    assert _class_names(recipe, records) == ["walk", "run", "jump"]
    assert _class_names(recipe, {0: "walk"}) is None  # names for some classes only
    labels = tmp_path / "classes.txt"
    labels.write_text("walk\njump\nrun\n")
    swapped = dataclasses.replace(recipe, labels=str(labels))
    with pytest.raises(SetupError, match=r"classes.txt names 2 class\(es\) otherwise.*"
                                         r"1: 'jump' there, 'run' in the records"):
        _class_names(swapped, records)
    assert _class_names(swapped, {}) == ["walk", "jump", "run"]  # nothing to check against
    with pytest.raises(SetupError, match=r"class index 7 \('shrink'\).*3 classes"):
        _class_names(recipe, {**records, 7: "shrink"})


def test_a_run_without_a_name_for_every_class_says_why(caplog):
    """config.json then gets no class names: a warning says so, and why, not silence."""
    from keras_squeezetime.training.train import _class_names

    recipe = dataclasses.replace(CUSTOM, num_classes=3, labels=None)
    with caplog.at_level("WARNING"):
        assert _class_names(recipe, {0: "walk", 2: "jump"}) is None
        assert _class_names(recipe, {}) is None
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("the training records name 2 of the 3 classes (none for "
                                  "class index 1), so config.json gets no class_names")
    assert warnings[1].startswith("the training records carry no class names")
    assert all("pass --labels with the 3 class names" in warning for warning in warnings)


def _cli_flag_names() -> list[str]:
    """The flags squeezetime-train defines, read in a fresh process (absl flags are global)."""
    code = (
        "import json; from absl.flags import FLAGS; "
        "from keras_squeezetime.training.cli import train; "
        "print(json.dumps([f.name for f in FLAGS.get_key_flags_for_module(train)]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _history_epochs(output: pathlib.Path) -> list[int]:
    with open(output / "history.csv") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_two_epochs_write_every_output_and_every_flag(tiny_records, tmp_path):
    output = tmp_path / "run"
    result = _train_cli(
        f"--train-data={tiny_records['train']}", f"--val-data={tiny_records['val']}",
        f"--output={output}", "--epochs=2", f"--labels={tiny_records['classes']}", *TINY_FLAGS,
        "--early-stopping-patience=3", timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "history.csv", "metrics.json", "model.keras",
                 "model.weights.h5", "checkpoints/best.keras", "checkpoints/last.keras"):
        assert (output / name).is_file(), name
    assert list((output / "logs" / "train").glob("events.out.tfevents.*"))
    assert not (output / "backup").exists()  # removed once the run is complete

    config = json.loads((output / "config.json").read_text())
    flags = _cli_flag_names()
    assert len(flags) >= 30 and "train-data" in flags and "jit-compile" in flags
    missing = [flag for flag in flags if flag.replace("-", "_") not in config]
    assert not missing
    assert config["frames"] == 4 and config["image_size"] == 32 and config["short_side"] == 40
    assert config["num_classes"] == 8 and config["width_multiplier"] == 0.25
    assert config["hflip"] is False and config["config"] == "custom"
    assert config["class_names"][0] == "move_left_to_right"
    # Resolved recipe: the custom (from scratch) recipe scaled to batch 4 and 2 epochs.
    assert config["optimizer"] == "adamw"
    assert config["learning_rate"] == pytest.approx(0.003 * (4 / 64) ** 0.5)
    assert config["weight_decay"] == pytest.approx(0.05) and config["clip_norm"] == 0.0
    assert config["schedule"] == "cosine" and config["dropout_rate"] == 0.0
    assert config["warmup_epochs"] == pytest.approx(2.4 * 2 / 30)
    assert config["crop_scales"] == [1.0] and config["random_erasing"] == 0.0
    assert config["color_jitter"] is False
    # The recipe's protocols, for squeezetime-evaluate (test side scaled to the 32 px crop).
    assert config["val_views"] == [1, 1] and config["test_views"] == [10, 3]
    assert config["test_image_size"] == 32 and config["test_short_side"] == 32
    assert config["steps_per_epoch"] == 4  # 16 records / batch 4
    assert config["early_stopping_patience"] == 3

    assert _history_epochs(output) == [0, 1]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "top5"} <= set(metrics)
    # model.keras loads with the layers alone (no training state); the checkpoints keep it.
    model = keras.saving.load_model(output / "model.keras")
    assert model.input_shape == (None, 4, 32, 32, 3) and model.output_shape == (None, 8)
    assert getattr(model, "optimizer", None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a list-input model warns of its structure per call
        model(np.zeros((1, 4, 32, 32, 3), "float32"))
    last = keras.saving.load_model(output / "checkpoints" / "last.keras")
    assert type(last.optimizer).__name__ == "AdamW"
    # The package's loader reads the run's config.json for a checkpoint (frame interval 2
    # and the class names, not the defaults).
    from keras_squeezetime import load_model

    checkpoint = load_model(str(output / "checkpoints" / "best.keras")).config
    assert checkpoint.frame_interval == 2 and checkpoint.class_names == tuple(config["class_names"])
    # With --early-stopping-patience the model keeps the best validation epoch's weights
    # even when every epoch ran: best.keras's, not last.keras's (unless epoch 2 was best).
    # metrics.json numbers epochs as history.csv does: the best is the first row scoring most.
    best_epoch = metrics["best_epoch_this_run"]
    with open(output / "history.csv") as handle:
        scores = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    assert best_epoch == scores.index(max(scores))
    assert metrics["best_val_accuracy_this_run"] == pytest.approx(max(scores))
    best = keras.saving.load_model(output / "checkpoints" / "best.keras")
    for a, b in zip(model.weights, best.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if best_epoch == 0:
        assert any(not np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(model.weights, last.weights))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_killed_run_resumes_after_its_last_epoch(tiny_records, tmp_path, stop):
    output = tmp_path / "run"
    flags = [
        f"--train-data={tiny_records['train']}", f"--output={output}", "--epochs=4",
        "--steps-per-epoch=2", *TINY_FLAGS,
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_squeezetime.training.cli.train", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=answer_ctrl_c,
    )
    metadata = output / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(stop)
    finally:
        _, stderr = process.communicate(timeout=120)
    if stop == signal.SIGINT:  # Ctrl-C: one line, not a traceback
        assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
        assert (f"squeezetime-train: interrupted; run the same command again to resume {output} "
                "after its last finished epoch.") in stderr
    killed_after = json.loads(metadata.read_text())["epoch"]
    assert 1 <= killed_after < 4
    assert not (output / "model.keras").exists()
    if stop == signal.SIGINT:
        return  # the backup it leaves is the kill's: resuming from it is proven there

    result = _train_cli(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed_after
    assert metrics["epochs_this_run"] == 4 - killed_after  # continued, not restarted
    assert _history_epochs(output) == [0, 1, 2, 3]
    # The optimizer state came back too: the step counter covers all four epochs.
    last = keras.saving.load_model(output / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == 4 * 2


def test_validation_records_numbered_otherwise_stop_the_run_before_training(tiny_records,
                                                                            tmp_path):
    """Validation scores of records whose class indices mean other classes are scores of
    mislabelled videos: the run stops, naming the classes, before building a model."""
    import shutil

    val = pathlib.Path(tiny_records["val"]).parent
    shifted = tmp_path / "val"
    shutil.copytree(val, shifted)
    manifest = json.loads((shifted / "manifest.json").read_text())
    names = [c["name"] for c in manifest["classes"]]
    for entry in manifest["classes"]:  # as if prepared without the first class's folder
        entry["name"] = names[(entry["index"] + 1) % len(names)]
    (shifted / "manifest.json").write_text(json.dumps(manifest))
    result = _train_cli(f"--train-data={tiny_records['train']}",
                        f"--val-data={shifted}/*.tfrecord", f"--output={tmp_path / 'run'}",
                        "--epochs=1", *TINY_FLAGS, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (f"the training records' class list names 8 class(es) otherwise than the "
            f"validation records do (0: {names[0]!r} there, {names[1]!r} in the records"
            in result.stderr)
    assert not (tmp_path / "run" / "config.json").exists()


# Runs that stop before training, each with its flags and the start of its last line.
SETUP_FAILURES = {
    # An empty mirror: the preset is neither cached nor downloadable, as offline.
    "offline preset": (["--init-weights=kinetics400"],
                       "--init-weights kinetics400: Cannot download preset 'kinetics400'"),
    "no TF_CONFIG": (["--strategy=multi_worker"],
                     "--strategy multi_worker needs the TF_CONFIG environment variable"),
    "video list": (["--train-data={listing}"],
                   "{listing} is not a TFRecord file (its first record header fails its "
                   "checksum); it looks like a video list"),
    "gs": (["--train-data=gs://squeezetime-no-such-bucket/*.tfrecord"],
           "cannot reach/read gs://squeezetime-no-such-bucket/"),
    "one clip per batch": (["--batch-size=1"],
                           "--batch-size 1 gives 1 clip per replica on 1 replica(s); "
                           "batch normalisation needs at least 2"),
}
BAD_FLAGS = {
    "no train data": (["--output=/tmp/x"], "--train-data is required"),
    "no records": (["--train-data=/nonexistent/*.tfrecord", "--output=/tmp/x",
                    "--num-classes=3"], "No TFRecord files match"),
    "unknown config": (["--train-data=a", "--output=/tmp/x", "--config=kinetics-400"], "config"),
    "patience without val": (["--train-data=/nonexistent/*.tfrecord", "--output=/tmp/x",
                              "--num-classes=3", "--early-stopping-patience=2"],
                             "--early-stopping-patience needs --val-data"),
}


@pytest.fixture(scope="module")
def failed_runs(tiny_records, tmp_path_factory) -> types.SimpleNamespace:
    """squeezetime-train's runs that fail on their flags or setup, in one process
    (`cli_runs`): no TF_CONFIG, and an empty weights mirror and cache."""
    tmp = tmp_path_factory.mktemp("failed_runs")
    listing = tmp / "train_list.txt"
    listing.write_text("videos/a.mp4 0\nvideos/b.mp4 1\n")
    (tmp / "existing").mkdir()
    runs = {case: [f"--train-data={tiny_records['train']}", f"--output={tmp / case / 'run'}",
                   "--epochs=1", *TINY_FLAGS, *(f.format(listing=listing) for f in flags)]
            for case, (flags, _) in SETUP_FAILURES.items()}
    runs.update({case: flags for case, (flags, _) in BAD_FLAGS.items()})
    runs["no classes"] = [f"--train-data={tiny_records['train']}", f"--output={tmp / 'existing'}"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(KERAS_HOME=str(tmp / "keras_home"),
               KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX=(tmp / "mirror").as_uri())
    results = cli_runs("keras_squeezetime.training.cli.train", runs, timeout=600, env=env)
    return types.SimpleNamespace(results=results, tmp=tmp, listing=listing)


@pytest.mark.parametrize("case", SETUP_FAILURES)
def test_setup_failures_are_one_line_and_leave_no_run_folder(failed_runs, case):
    """Each stops before training with exit status 2 and one line, not a traceback, and
    writes nothing (a config.json left behind would make a rerun look like a resume)."""
    result = failed_runs.results[case]
    message = SETUP_FAILURES[case][1].format(listing=failed_runs.listing)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr[-1000:]
    assert not (failed_runs.tmp / case / "run").exists()


def test_resume_refuses_a_changed_run(tiny_records, tmp_path):
    output = tmp_path / "run"
    (output / "backup").mkdir(parents=True)
    (output / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    tiny = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    tiny.save_weights(str(output / "backup" / "latest.weights.h5"))  # a backup reads whole
    (output / "config.json").write_text(json.dumps({"frames": 8, "config": "custom"}))
    result = _train_cli(f"--train-data={tiny_records['train']}", f"--output={output}",
                        "--epochs=2", *TINY_FLAGS, timeout=120)
    assert result.returncode != 0
    assert "unfinished run with other settings" in result.stderr
    assert "frames: 8 -> 4" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_bad_flags_fail_cleanly(failed_runs, case):
    result = failed_runs.results[case]
    assert result.returncode != 0
    assert BAD_FLAGS[case][1] in result.stderr
    assert "Traceback" not in result.stderr


def test_custom_config_needs_num_classes(failed_runs):
    result = failed_runs.results["no classes"]
    assert result.returncode != 0
    assert "needs --num-classes" in result.stderr and "Traceback" not in result.stderr


def test_init_from_our_keras_file_replaces_a_head_of_other_classes(tmp_path):
    shape = (4, 32, 32, 3)
    source = SqueezeTime(input_shape=shape, num_classes=3, width_multiplier=0.25)
    source.save(tmp_path / "source.keras")
    recipe = dataclasses.replace(CUSTOM, num_classes=5, frames=4, image_size=32,
                                 init_weights=str(tmp_path / "source.keras"))
    keras.utils.set_random_seed(0)
    fresh_head = SqueezeTime(input_shape=shape, num_classes=5, width_multiplier=0.25,
                             dropout_rate=recipe.dropout_rate).get_layer("head").fc.kernel.numpy()
    keras.utils.set_random_seed(0)
    target = build_model(recipe, width_multiplier=0.25)

    for saved, loaded in zip(source.weights, target.weights):
        assert saved.path == loaded.path
        if not saved.path.startswith("head/"):
            np.testing.assert_array_equal(saved.numpy(), loaded.numpy(), err_msg=saved.path)
    np.testing.assert_array_equal(target.get_layer("head").fc.kernel.numpy(), fresh_head)

    with pytest.raises(ValueError, match="--init-weights"):
        build_model(dataclasses.replace(recipe, num_classes=3), width_multiplier=0.5)
