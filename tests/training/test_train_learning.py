"""`squeezetime-train` learns, and the features that change what a training step computes
(frame shuffling, mixed precision, XLA, validation steps, multi-view validation), on tiny
tinted clips written as real TFRecords. Apart from test_train.py so that the suite's two
workers share the slow training runs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib

import keras
import numpy as np
import pytest

from keras_squeezetime import SqueezeTime
from tests.helpers import assert_input_dependent, calibrate_batch_norm
from tests.helpers.train_cli import train_cli as _train_cli


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
                        "--epochs=4", "--steps-per-epoch=16", "--lr=0.01", "--noaugment",
                        "--dropout-rate=0",
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

    # The control: the whole validation set, as the run reads it without --validation-steps
    # (the same dataset function and settings), fails on the corrupt record.
    import tensorflow as tf

    from keras_squeezetime.training.train_config import (TrainConfig, pipeline_config,
                                                         resolve_recipe)
    from keras_squeezetime.training.train_data import validation_dataset

    run_config = TrainConfig(**{key: config[key] for key in ("train_data", "output", "num_classes",
                                                             "frames", "frame_interval",
                                                             "image_size", "short_side")})
    data = validation_dataset([str(root / "val" / "clips-0.tfrecord")], 8,
                              pipeline_config(run_config, resolve_recipe(run_config)))
    batches = iter(data)
    next(batches)  # the first batch, all the run read with --validation-steps=1
    with pytest.raises(tf.errors.DataLossError, match="corrupted record"):
        next(batches)


def test_compile_for_training_sets_xla_and_builds_the_optimizer():
    from keras_squeezetime.training.model_setup import build_model, compile_for_training
    from keras_squeezetime.training.recipes import get_recipe

    recipe = dataclasses.replace(get_recipe("custom"), num_classes=4, frames=4, image_size=32,
                                 short_side=36, init_weights=None)
    for jit_compile in (True, False):
        model = build_model(recipe, 0.25)
        compile_for_training(model, recipe, batch_size=8, steps_per_epoch=4,
                             jit_compile=jit_compile)
        assert model.jit_compile is jit_compile
        # Built before fit, so the first step is traced once: a slot per trainable variable.
        assert model.optimizer.built
        assert len(model.optimizer.variables) >= 2 * len(model.trainable_variables)


# ~90-130 s of XLA compilation on 2 cores; the test above is the fast check
@pytest.mark.extra_large
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
    per video, scored against an independent computation on the same batches (a softmax
    of the logits, averaged here), with a model whose answers change from view to view and
    from video to video: averaging the wrong views, or scoring a video against another's
    label, fails."""
    from keras_squeezetime.training import pipeline
    from keras_squeezetime.training.callbacks import MultiViewValidation
    from keras_squeezetime.training.train_data import validation_dataset

    keras.utils.set_random_seed(0)
    model = SqueezeTime(input_shape=(4, 32, 32, 3), num_classes=4, width_multiplier=0.25)
    config = pipeline.PipelineConfig(frames=4, frame_interval=2, image_size=32, short_side=32)
    files = pipeline.list_record_files(tinted_records["val"])
    data = validation_dataset(files, 3, config, views=(2, 3))
    batches = [(np.asarray(clips), np.asarray(batch_labels)) for clips, batch_labels in data]
    assert all(clips.shape[1:] == (6, 4, 32, 32, 3) for clips, _ in batches)
    views = np.concatenate([clips for clips, _ in batches]).reshape((-1, 4, 32, 32, 3))
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    assert len(labels) == 16
    # BN statistics from these views, as a trained model's come from its data: the random
    # model's answers then depend on the clip by O(1) (an uncalibrated one's by ~1e-5).
    calibrate_batch_norm(model, views)
    callback = MultiViewValidation(data, num_views=6)
    callback.set_model(model)
    logs = {}
    callback.on_epoch_end(0, logs)

    # Logits of the 96 views, checked to depend on the clip (measured: 4 classes, spread 1.7).
    scores = assert_input_dependent(model, views).reshape(16, 6, 4)
    per_view = np.exp(scores - scores.max(axis=-1, keepdims=True))
    per_view /= per_view.sum(axis=-1, keepdims=True)
    probabilities = per_view.mean(axis=1)
    # Each video's views differ (measured: logits by 0.39 or more, mean over classes), and
    # some disagree with their video's average on the top class: averaging is not moot.
    assert np.ptp(scores, axis=1).mean(axis=1).min() > 0.2
    assert (per_view.argmax(-1) != probabilities.argmax(-1)[:, None]).any()
    picked = probabilities[np.arange(16), labels]
    assert logs["val_accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    assert logs["val_loss"] == pytest.approx(-np.log(picked).mean(), rel=1e-5)

    limited = MultiViewValidation(data, num_views=6, steps=2)
    limited.set_model(model)
    first = limited.scores()  # 2 batches of 3 videos
    assert first["val_accuracy"] == pytest.approx(np.mean(probabilities[:6].argmax(1)
                                                          == labels[:6]))
    assert first["val_loss"] == pytest.approx(-np.log(picked[:6]).mean(), rel=1e-5)
