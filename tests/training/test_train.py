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

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from keras_squeezetime.training import optimizer  # noqa: F401  (loads checkpoints)
from keras_squeezetime.training.model_setup import build_model
from keras_squeezetime.training.recipes import CUSTOM

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
        entries = parse_video_list(summary[f"{split}_list"], root / "videos", summary["classes_file"])
        prepare_dataset(entries, str(root / split), short_side=None, max_frames=None, shard_size=8)
        patterns[split] = str(root / split / "*.tfrecord")
    return patterns


def _train_cli(*flags: str, timeout: float = 300, info_logs: bool = False
               ) -> subprocess.CompletedProcess:
    # info_logs: TensorFlow's C++ INFO lines (tests/conftest.py silences them by default).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0") if info_logs else None
    return subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.train", *flags],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


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
        timeout=900,
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
    assert config["color_jitter"] is True
    # The recipe's protocols, for squeezetime-evaluate (test side scaled to the 32 px crop).
    assert config["val_views"] == [1, 1] and config["test_views"] == [10, 3]
    assert config["test_image_size"] == 32 and config["test_short_side"] == 32
    assert config["steps_per_epoch"] == 4  # 16 records / batch 4

    assert _history_epochs(output) == [0, 1]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "top5"} <= set(metrics)
    # model.keras loads with the layers alone (no training state); the checkpoints keep it.
    model = keras.saving.load_model(output / "model.keras")
    assert model.input_shape == (None, 4, 32, 32, 3) and model.output_shape == (None, 8)
    assert getattr(model, "optimizer", None) is None
    last = keras.saving.load_model(output / "checkpoints" / "last.keras")
    assert type(last.optimizer).__name__ == "AdamW"
    for a, b in zip(model.weights, last.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_killed_run_resumes_after_its_last_epoch(tiny_records, tmp_path):
    output = tmp_path / "run"
    flags = [
        f"--train-data={tiny_records['train']}", f"--output={output}", "--epochs=4",
        "--steps-per-epoch=2", *TINY_FLAGS,
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_squeezetime.training.cli.train", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    metadata = output / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    killed_after = json.loads(metadata.read_text())["epoch"]
    assert 1 <= killed_after < 4
    assert not (output / "model.keras").exists()

    result = _train_cli(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed_after
    assert metrics["epochs_this_run"] == 4 - killed_after  # continued, not restarted
    assert _history_epochs(output) == [0, 1, 2, 3]
    # The optimizer state came back too: the step counter covers all four epochs.
    last = keras.saving.load_model(output / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == 4 * 2


def test_resume_refuses_a_changed_run(tiny_records, tmp_path):
    output = tmp_path / "run"
    (output / "backup").mkdir(parents=True)
    (output / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    (output / "config.json").write_text(json.dumps({"frames": 8, "config": "custom"}))
    result = _train_cli(f"--train-data={tiny_records['train']}", f"--output={output}",
                        "--epochs=2", *TINY_FLAGS, timeout=120)
    assert result.returncode != 0
    assert "unfinished run with other settings" in result.stderr
    assert "frames: 8 -> 4" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--output=/tmp/x"], "--train-data is required"),
        (["--train-data=/nonexistent/*.tfrecord", "--output=/tmp/x", "--num-classes=3"],
         "No TFRecord files match"),
        (["--train-data=a", "--output=/tmp/x", "--config=kinetics-400"], "config"),
    ],
)
def test_bad_flags_fail_cleanly(flags, message):
    result = _train_cli(*flags, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_custom_config_needs_num_classes(tiny_records, tmp_path):
    result = _train_cli(f"--train-data={tiny_records['train']}", f"--output={tmp_path}",
                        timeout=120)
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
                             dropout_rate=0.5).get_layer("head").fc.kernel.numpy()
    keras.utils.set_random_seed(0)
    target = build_model(recipe, width_multiplier=0.25)

    for saved, loaded in zip(source.weights, target.weights):
        assert saved.path == loaded.path
        if not saved.path.startswith("head/"):
            np.testing.assert_array_equal(saved.numpy(), loaded.numpy(), err_msg=saved.path)
    np.testing.assert_array_equal(target.get_layer("head").fc.kernel.numpy(), fresh_head)

    with pytest.raises(ValueError, match="--init-weights"):
        build_model(dataclasses.replace(recipe, num_classes=3), width_multiplier=0.5)


# --- learning, and the features of training that change what a step computes ------------

LEARN_FLAGS = [
    "--num-classes=4", "--frames=4", "--frame-interval=2", "--image-size=32", "--short-side=36",
    "--width-multiplier=0.25", "--batch-size=8", "--seed=0", "--data-threads=1",
]
_TINTS = np.array([[210, 40, 40], [40, 210, 40], [40, 40, 210], [210, 210, 40]])


def _write_records(path: pathlib.Path, clips: list[tuple[np.ndarray, int]],
                   corrupt_at: int | None = None) -> None:
    """Real TFRecords of `(frames uint8 (T, H, W, 3), label)` clips; `corrupt_at`: flip a
    byte inside that record's payload after writing (its CRC then fails)."""
    import tensorflow as tf

    from keras_squeezetime.training.records import make_sequence_example

    path.parent.mkdir(parents=True, exist_ok=True)
    serialized = [
        make_sequence_example([tf.io.encode_jpeg(f).numpy() for f in frames], label,
                              media_id=f"clip{i}").SerializeToString()
        for i, (frames, label) in enumerate(clips)
    ]
    data = bytearray()
    offsets = []
    for record in serialized:
        offsets.append(len(data))
        with tf.io.TFRecordWriter(str(path) + ".one") as writer:
            writer.write(record)
        data += pathlib.Path(str(path) + ".one").read_bytes()
    os.remove(str(path) + ".one")
    if corrupt_at is not None:
        data[offsets[corrupt_at] + 12 + 100] ^= 0xFF  # 8-byte length + 4-byte CRC, then payload
    path.write_bytes(bytes(data))


def _tinted_clips(count: int, seed: int, frames: int = 8) -> list[tuple[np.ndarray, int]]:
    """Noise clips tinted by class (4 classes): learnable in a few steps from scratch."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(count):
        label = i % 4
        pixels = rng.integers(0, 100, size=(frames, 36, 44, 3)) + _TINTS[label] * 0.6
        clips.append((pixels.astype(np.uint8), label))
    return clips


@pytest.fixture(scope="module")
def tinted_records(tmp_path_factory) -> dict[str, str]:
    """64 train / 16 val tinted clips (4 classes)."""
    root = tmp_path_factory.mktemp("tinted")
    _write_records(root / "train" / "clips-0.tfrecord", _tinted_clips(64, seed=0))
    _write_records(root / "val" / "clips-0.tfrecord", _tinted_clips(16, seed=1))
    return {"train": str(root / "train" / "*.tfrecord"), "val": str(root / "val" / "*.tfrecord"),
            "root": str(root)}


def _history(output: pathlib.Path) -> list[dict[str, float]]:
    with open(output / "history.csv") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_training_learns_from_scratch(tinted_records, tmp_path):
    """Through `squeezetime-train`: the loss falls and validation beats chance clearly.

    The `custom` recipe's AdamW from random weights, set for a 64-step run: learning rate
    0.01 per 64 clips (0.0035 at batch 8), centre crops, no dropout (the defaults need
    hundreds of steps to leave chance; BENCHMARKS.md, "From-scratch learning"). Shuffling
    the labels of each training batch or freezing the variables makes this test fail
    (checked by hand; see the commit).
    """
    output = tmp_path / "run"
    result = _train_cli(f"--train-data={tinted_records['train']}",
                        f"--val-data={tinted_records['val']}", f"--output={output}",
                        "--epochs=8", "--lr=0.01", "--noaugment", "--dropout-rate=0",
                        *LEARN_FLAGS, timeout=900, info_logs=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneDNN custom operations" in result.stderr  # TensorFlow's INFO lines are there
    assert "Compiled cluster using XLA" not in result.stderr  # and no XLA without the flag
    history = _history(output)
    losses = [row["loss"] for row in history]
    assert losses[-1] < 0.6 * losses[0], losses
    # Chance is 0.25 on 16 validation clips (4 per class).
    assert history[-1]["val_accuracy"] >= 0.75, [row["val_accuracy"] for row in history]


def test_shuffle_frames_permutes_the_frames_of_every_clip(tmp_path):
    """--shuffle-frames: each clip keeps exactly its frames, in another order (train and
    multi-view validation batches alike)."""
    from keras_squeezetime.training.recipes import get_recipe
    from keras_squeezetime.training.train_config import TrainConfig, pipeline_config
    from keras_squeezetime.training.train_data import train_dataset, validation_dataset

    # Frame i of every clip is a flat grey of level 20 * i: the order can be read back.
    levels = (np.arange(12) * 20 + 10).astype(np.uint8)
    clips = [(np.broadcast_to(levels[:, None, None, None], (12, 24, 24, 3)).copy(), i % 4)
             for i in range(8)]
    _write_records(tmp_path / "clips-0.tfrecord", clips)
    files = [str(tmp_path / "clips-0.tfrecord")]
    config = TrainConfig(train_data=files[0], output=str(tmp_path), num_classes=4, frames=6,
                         frame_interval=2, image_size=16, short_side=16, augment=False,
                         hflip=False, seed=0, deterministic=True)
    recipe = dataclasses.replace(get_recipe("custom"), num_classes=4, frames=6,
                                 frame_interval=2, image_size=16, short_side=16, hflip=False)
    data_config = pipeline_config(config, recipe)

    def frame_levels(clips):  # (..., T, H, W, 3) -> (..., T) level indices
        return np.rint((np.asarray(clips).mean(axis=(-3, -2, -1)) - 10) / 20).astype(int)

    ordered = frame_levels(next(iter(train_dataset(files, 8, data_config)))[0])
    shuffled = frame_levels(next(iter(train_dataset(files, 8, data_config, True)))[0])
    assert (np.diff(ordered, axis=-1) == 2).all()  # every 2nd stored frame, in order
    np.testing.assert_array_equal(np.sort(shuffled, axis=-1), np.sort(ordered, axis=-1))
    assert (shuffled != ordered).any(axis=-1).mean() >= 0.75

    views = validation_dataset(files, 4, data_config, shuffle_frames=True, views=(2, 3))
    view_levels = frame_levels(next(iter(views))[0])  # (4 videos, 6 views, 6 frames)
    assert view_levels.shape == (4, 6, 6)
    plain = frame_levels(next(iter(validation_dataset(files, 4, data_config, views=(2, 3))))[0])
    np.testing.assert_array_equal(np.sort(view_levels, axis=-1), plain)
    assert (view_levels != plain).any(axis=-1).mean() >= 0.75


def test_mixed_precision_validation_steps_and_a_corrupt_record(tinted_records, tmp_path):
    """One run, three features: --mixed-precision computes in bfloat16 with float32
    variables; a corrupt training record is reported by file and position and training
    goes on; --validation-steps bounds validation (the validation set's last record is
    corrupt and evaluation never skips, so reading it would end the run)."""
    root = tmp_path / "data"
    _write_records(root / "train" / "clips-0.tfrecord", _tinted_clips(16, seed=2), corrupt_at=12)
    _write_records(root / "train" / "clips-1.tfrecord", _tinted_clips(16, seed=3))
    _write_records(root / "val" / "clips-0.tfrecord", _tinted_clips(12, seed=4), corrupt_at=11)
    output = tmp_path / "run"
    flags = [f"--train-data={root / 'train' / '*.tfrecord'}",
             f"--val-data={root / 'val' / '*.tfrecord'}", "--epochs=1", "--steps-per-epoch=2",
             *LEARN_FLAGS]
    result = _train_cli(*flags, f"--output={output}", "--validation-steps=1",
                        "--mixed-precision", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    assert f"{root / 'train' / 'clips-0.tfrecord'}: record 12 is corrupt" in result.stderr
    config = json.loads((output / "config.json").read_text())
    assert config["num_train_records"] == 16 + 12  # the records before the corrupt one count
    assert config["dtype_policy"] == "mixed_bfloat16"
    model = keras.saving.load_model(output / "model.keras")
    stem = model.get_layer("stem_conv")
    assert stem.dtype_policy.name == "mixed_bfloat16" and stem.compute_dtype == "bfloat16"
    assert stem.kernel.dtype == "float32"
    assert np.isfinite(_history(output)[0]["loss"]) and "val_accuracy" in _history(output)[0]

    # The control: without --validation-steps the whole validation set is read.
    result = _train_cli(*flags, f"--output={tmp_path / 'all_val'}", timeout=900)
    assert result.returncode != 0 and "corrupted record" in result.stderr


def test_jit_compile_compiles_the_train_step_with_xla(tinted_records, tmp_path):
    flags = [f"--train-data={tinted_records['train']}", "--epochs=1", "--steps-per-epoch=1",
             *LEARN_FLAGS]
    result = _train_cli(*flags, f"--output={tmp_path / 'xla'}", "--jit-compile", timeout=900,
                        info_logs=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Compiled cluster using XLA" in result.stderr
    assert json.loads((tmp_path / "xla" / "config.json").read_text())["jit_compile"] is True


def test_recipes_carry_their_validation_and_test_protocols():
    from keras_squeezetime.training.recipes import get_recipe
    from keras_squeezetime.training.run_folder import test_protocol

    hmdb = get_recipe("hmdb51")
    assert hmdb.val_views == (2, 3) and hmdb.validation_short_side() == 224
    assert test_protocol(hmdb) == (286, 286)
    small = dataclasses.replace(hmdb, image_size=112, short_side=128)
    assert small.validation_short_side() == 112 and test_protocol(small) == (143, 143)
    kinetics = get_recipe("kinetics400")
    assert kinetics.val_views == (1, 1) and kinetics.validation_short_side() == 256
    assert test_protocol(kinetics) == (224, 224) and kinetics.test_views == (10, 3)


def test_multi_view_validation_averages_each_videos_views(tinted_records):
    """HMDB51's in-training validation: 2 clips x 3 crops per video, probabilities averaged
    per video, scored against an independent computation on the same batches."""
    from keras_squeezetime.training import pipeline
    from keras_squeezetime.training.callbacks import MultiViewValidation
    from keras_squeezetime.training.train_data import validation_dataset

    keras.utils.set_random_seed(0)
    model = SqueezeTime(input_shape=(4, 32, 32, 3), num_classes=4, width_multiplier=0.25)
    config = pipeline.PipelineConfig(frames=4, frame_interval=2, image_size=32, short_side=32)
    files = pipeline.list_record_files(tinted_records["val"])
    data = validation_dataset(files, 3, config, views=(2, 3))
    callback = MultiViewValidation(data, num_views=6)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)

    probabilities, labels = [], []
    for clips, batch_labels in data:
        clips = np.asarray(clips)
        assert clips.shape[1:] == (6, 4, 32, 32, 3)
        flat = model.predict_on_batch(clips.reshape((-1, 4, 32, 32, 3)))
        probabilities.append(np.asarray(flat).reshape(len(clips), 6, 4).mean(axis=1))
        labels.append(np.asarray(batch_labels))
    probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
    assert len(labels) == 16
    expected_loss = -np.log(probabilities[np.arange(16), labels]).mean()
    assert logs["val_accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    assert logs["val_loss"] == pytest.approx(expected_loss, rel=1e-5)
    # The views differ (else averaging them would be moot).
    assert np.ptp(np.asarray(model.predict_on_batch(
        np.asarray(next(iter(data))[0])[0])), axis=0).max() > 0

    limited = MultiViewValidation(data, num_views=6, steps=2)
    limited.set_model(model)
    assert limited.scores()["val_accuracy"] * 6 == pytest.approx(
        round(limited.scores()["val_accuracy"] * 6))  # 2 batches of 3 videos
