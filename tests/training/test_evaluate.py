"""`squeezetime-evaluate` on real records: multi-view scoring of a `.keras` model checked
against NumPy, the test protocol of `config.json` by default (HMDB51's 2x3 at 286 included)
and flags over it, averaging of probabilities (not logits), corrupt records skipped and
reported, an official `.pth` checkpoint, errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime import SqueezeTime
from keras_squeezetime.training.evaluate import classification_metrics, evaluate_model
from keras_squeezetime.training.records import make_sequence_example

NAMES = ["a", "b", "c"]


PARITY_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "official_parity"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> str:
    """7 clips of 20 random frames at 48x64, labels cycling 0, 1, 2."""
    root = tmp_path_factory.mktemp("eval_data")
    rng = np.random.default_rng(1)
    with tf.io.TFRecordWriter(str(root / "val-0.tfrecord")) as writer:
        for i in range(7):
            frames = rng.integers(0, 255, size=(20, 48, 64, 3), dtype=np.uint8)
            jpegs = [tf.io.encode_jpeg(f).numpy() for f in frames]
            writer.write(make_sequence_example(jpegs, i % 3).SerializeToString())
    return str(root / "*.tfrecord")


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory) -> pathlib.Path:
    """A tiny `.keras` model with the config.json training would write beside it."""
    folder = tmp_path_factory.mktemp("model")
    model = SqueezeTime(input_shape=(4, 32, 32, 3), num_classes=3, width_multiplier=0.25)
    model.save(folder / "model.keras")
    config = {"frames": 4, "frame_interval": 2, "image_size": 32, "short_side": 40,
              "num_classes": 3, "width_multiplier": 0.25, "class_names": NAMES,
              "test_views": [2, 3], "test_short_side": 36, "test_image_size": 32}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.keras"


def test_multi_view_metrics_match_numpy_on_saved_predictions(keras_model, records, tmp_path):
    metrics = evaluate_model(str(keras_model), records, batch_size=3, output=str(tmp_path))
    # Views and sampling came from the test protocol of config.json beside the model.
    assert metrics["sampling"] == {"frames": 4, "frame_interval": 2, "image_size": 32,
                                   "short_side": 36}
    assert metrics["views"] == {"clips": 2, "crops": 3} and metrics["num_videos"] == 7
    assert metrics["clips_scored"] == 7 * 6 and metrics["protocol"]["overridden"] == []
    assert metrics["protocol"]["source"] == str(keras_model.parent / "config.json")
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"top1", "top5", "mean_class_accuracy", "per_class_accuracy"} <= set(saved)

    with np.load(tmp_path / "predictions.npz") as data:
        probabilities, labels = data["probabilities"], data["labels"]
    assert probabilities.shape == (7, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)  # mean of softmaxes
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2, 0])
    predicted = probabilities.argmax(axis=1)
    assert saved["top1"] == pytest.approx(np.mean(predicted == labels))
    assert saved["top5"] == pytest.approx(1.0)  # 3 classes: always in the top 5
    per_class = [np.mean(predicted[labels == c] == c) for c in range(3)]
    assert saved["mean_class_accuracy"] == pytest.approx(np.mean(per_class))
    assert saved["per_class_accuracy"] == pytest.approx(dict(zip(NAMES, per_class)))
    confusion = np.zeros((3, 3), int)
    for true, guess in zip(labels, predicted):
        confusion[true, guess] += 1
    np.testing.assert_array_equal(saved["confusion_matrix"], confusion)


def test_views_are_averaged_as_probabilities(keras_model, records):
    import keras

    from keras_squeezetime.training import pipeline

    model = keras.saving.load_model(keras_model)
    config = pipeline.PipelineConfig(frames=4, frame_interval=2, image_size=32, short_side=40)
    clips, _ = next(iter(pipeline.eval_dataset(records, 2, config, num_clips=2, num_crops=3)))
    expected = np.stack([np.mean(model.predict_on_batch(video), axis=0) for video in clips])
    metrics = evaluate_model(model, records, views=(2, 3), short_side=40, frame_interval=2,
                             batch_size=2, max_batches=1)
    assert metrics["num_videos"] == 2
    # Recompute top-1 from the independently averaged views.
    assert metrics["top1"] == pytest.approx(np.mean(expected.argmax(1) == np.array([0, 1])))


def test_classification_metrics_by_hand():
    probabilities = np.array([
        [0.1, 0.2, 0.3, 0.4, 0.0, 0.0],  # label 3: top-1 right
        [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],  # label 1: 2nd-5th tie at 0.1 -> lower index first
        [0.0, 0.05, 0.05, 0.1, 0.2, 0.6],  # label 0: last, not in the top 5
        [0.2, 0.2, 0.2, 0.2, 0.1, 0.1],  # label 3: ties -> rank 4, in top 5
    ])
    metrics = classification_metrics(probabilities, np.array([3, 1, 0, 3]))
    assert metrics["top1"] == pytest.approx(0.25)
    assert metrics["top5"] == pytest.approx(0.75)
    assert metrics["per_class_accuracy"] == {"0": 0.0, "1": 0.0, "3": 0.5}
    assert metrics["mean_class_accuracy"] == pytest.approx(1 / 6)


def test_official_pth_checkpoint(tmp_path_factory, tmp_path):
    checkpoint = PARITY_DIR / "squeezetime_w0.25_f16_112px.pth"
    root = tmp_path_factory.mktemp("pth_data")
    rng = np.random.default_rng(2)
    with tf.io.TFRecordWriter(str(root / "val.tfrecord")) as writer:
        for i in range(2):
            frames = rng.integers(0, 255, size=(16, 112, 128, 3), dtype=np.uint8)
            writer.write(make_sequence_example(
                [tf.io.encode_jpeg(f).numpy() for f in frames], i + 5).SerializeToString())
    metrics = evaluate_model(str(checkpoint), str(root / "*.tfrecord"), views=(1, 3),
                             frame_interval=1, image_size=112, short_side=112, output=str(tmp_path))
    assert metrics["num_classes"] == 10 and metrics["num_videos"] == 2
    assert metrics["sampling"]["frames"] == 16  # read from the checkpoint's stem
    with np.load(tmp_path / "predictions.npz") as data:
        assert data["probabilities"].shape == (2, 10)
        assert np.all(np.isfinite(data["probabilities"]))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model=x.keras", "--data=a", "--views=10by3"], "CLIPSxCROPS"),
        (["--model=x.keras", "--data=a", "--views=2x2"], "crops 1 or 3"),
        (["--model=/nonexistent/model.pth", "--data=a"], "does not exist"),
        (["--data=a"], "--model is required"),
    ],
)
def test_cli_errors_are_clean(flags, message):
    result = subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.evaluate", *flags],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_writes_metrics(keras_model, records, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.evaluate",
         f"--model={keras_model}", f"--data={records}", "--views=1x3", f"--output={tmp_path}"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["top1"] == saved["top1"] and saved["views"] == {"clips": 1, "crops": 3}


def _hmdb51_model_folder(folder: pathlib.Path) -> pathlib.Path:
    """A model folder trained at 32 px whose config.json records HMDB51's test protocol
    (2 clips x 3 crops of 286 at short side 286, as the official config tests)."""
    folder.mkdir()
    SqueezeTime(input_shape=(4, 32, 32, 3), num_classes=3, width_multiplier=0.25).save(
        folder / "model.keras")
    (folder / "config.json").write_text(json.dumps({
        "frames": 4, "frame_interval": 2, "image_size": 32, "short_side": 40, "num_classes": 3,
        "width_multiplier": 0.25, "class_names": NAMES, "config": "hmdb51",
        "val_views": [2, 3], "test_views": [2, 3], "test_short_side": 286,
        "test_image_size": 286}))
    return folder


def test_hmdb51_protocol_from_config_json_by_default_and_flags_override(records, tmp_path):
    folder = _hmdb51_model_folder(tmp_path / "hmdb51_model")

    metrics = evaluate_model(str(folder), records, batch_size=2, max_batches=1)

    # What actually ran: 2 videos x 6 views through the model rebuilt at 286 x 286.
    assert metrics["input_shape"] == [4, 286, 286, 3] and metrics["clips_scored"] == 2 * 6
    assert metrics["views"] == {"clips": 2, "crops": 3}
    assert metrics["sampling"] == {"frames": 4, "frame_interval": 2, "image_size": 286,
                                   "short_side": 286}
    assert metrics["protocol"] == {
        "name": "test", "source": str(folder / "config.json"),
        "views": {"clips": 2, "crops": 3}, "short_side": 286, "image_size": 286,
        "overridden": []}

    result = subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.evaluate", f"--model={folder}",
         f"--data={records}", "--views=1x3", "--image-size=32", "--short-side=40",
         f"--output={tmp_path / 'flags'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "flags" / "metrics.json").read_text())
    assert saved["input_shape"] == [4, 32, 32, 3] and saved["clips_scored"] == 7 * 3
    assert saved["views"] == {"clips": 1, "crops": 3} and saved["num_videos"] == 7
    assert saved["sampling"] == {"frames": 4, "frame_interval": 2, "image_size": 32,
                                 "short_side": 40}
    assert saved["protocol"]["overridden"] == ["image_size", "short_side", "views"]
    assert saved["protocol"]["views"] == {"clips": 2, "crops": 3}  # what the file said


# Logits of each crop's colour: two crops say class 1 with confidence, one says class 0
# by a wide logit margin. Mean of logits: [10/3, -2/3, 0] -> class 0. Mean of
# probabilities (mmaction's average_clips='prob', the official configs):
# [(2 * 0.018 + 1.0) / 3, (2 * 0.965) / 3, ...] = [0.345, 0.643, ...] -> class 1.
CROP_LOGITS = np.array([[0.0, 4.0, 0.0],      # left third: red
                        [0.0, 4.0, 0.0],      # centre third: green
                        [10.0, -10.0, 0.0]])  # right third: blue


def _colour_model(activation):
    """Mean colour of the clip (/255) -> Dense(3) with `CROP_LOGITS` -> `activation`."""
    import keras

    inputs = keras.Input((2, 32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling3D()(keras.layers.Rescaling(1 / 255)(inputs))
    dense = keras.layers.Dense(3, use_bias=False, activation=activation)
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([CROP_LOGITS])
    return model


def test_views_average_probabilities_not_logits(tmp_path):
    # One video, label 1: 32 x 96 frames whose thirds are the three crops of 32 at short side 32.
    frame = np.zeros((32, 96, 3), np.uint8)
    for third in range(3):
        frame[:, 32 * third:32 * (third + 1), third] = 255
    path = tmp_path / "colours.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        jpeg = tf.io.encode_jpeg(frame, quality=100).numpy()
        writer.write(make_sequence_example([jpeg] * 6, 1).SerializeToString())
    crop_probabilities = np.exp(CROP_LOGITS) / np.exp(CROP_LOGITS).sum(1, keepdims=True)
    expected = crop_probabilities.mean(0)
    assert expected.argmax() == 1 and CROP_LOGITS.mean(0).argmax() == 0  # they disagree

    results = {}
    for activation in ("softmax", None):
        metrics = evaluate_model(_colour_model(activation), str(path), views=(2, 3),
                                 frame_interval=1, image_size=32, short_side=32,
                                 output=str(tmp_path / str(activation)))
        with np.load(tmp_path / str(activation) / "predictions.npz") as data:
            results[activation] = data["probabilities"][0]
        assert metrics["top1"] == 1.0, (activation, results[activation])
        assert metrics["averaging"] == ("probabilities" if activation else "softmax of logits")
    # JPEG keeps each third's colour to about 1/255: logits move by < 0.1.
    np.testing.assert_allclose(results["softmax"], expected, atol=0.02)
    np.testing.assert_allclose(results[None], results["softmax"], rtol=1e-5)


def _corrupt_payload(path: pathlib.Path, serialized: list[bytes], index: int) -> None:
    """Flips a byte inside record `index`'s data: its CRC no longer matches."""
    offset = sum(12 + len(data) + 4 for data in serialized[:index]) + 12 + len(serialized[index]) // 2
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupt_records_are_skipped_and_reported(keras_model, tmp_path, caplog):
    rng = np.random.default_rng(3)

    def record(label, frames=None):
        frames = frames or [tf.io.encode_jpeg(f).numpy()
                            for f in rng.integers(0, 255, (8, 48, 64, 3), dtype=np.uint8)]
        return make_sequence_example(frames, label).SerializeToString()

    # File a: record 2 holds frames that are not JPEGs. File b: record 1's bytes changed
    # after writing, so its CRC fails and the reader cannot go on to record 2.
    files = {"a": [record(0), record(1), record(2, [b"not a jpeg"] * 8), record(0)],
             "b": [record(1), record(2), record(0)]}
    for name, serialized in files.items():
        with tf.io.TFRecordWriter(str(tmp_path / f"{name}.tfrecord")) as writer:
            for data in serialized:
                writer.write(data)
    _corrupt_payload(tmp_path / "b.tfrecord", files["b"], 1)
    pattern = str(tmp_path / "*.tfrecord")

    with caplog.at_level("WARNING"):
        metrics = evaluate_model(str(keras_model), pattern, views=(1, 1), output=str(tmp_path))

    assert metrics["num_videos"] == 4 and metrics["num_skipped"] == 3
    assert metrics["skipped"] == [
        {"file": str(tmp_path / "a.tfrecord"), "record": 2},
        {"file": str(tmp_path / "b.tfrecord"), "record": 1},
        {"file": str(tmp_path / "b.tfrecord"), "record": 2},
    ]
    with np.load(tmp_path / "predictions.npz") as data:
        np.testing.assert_array_equal(np.sort(data["labels"]), [0, 0, 1, 1])
    warnings = [r.getMessage() for r in caplog.records if "Skipped corrupt record" in r.getMessage()]
    assert len(warnings) == 3 and "a.tfrecord" in warnings[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["num_skipped"] == 3

    # Unskipped, a corrupt record stops the run, named: the first in file order.
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'a.tfrecord'}: record 2 is corrupt \("):
        evaluate_model(str(keras_model), pattern, views=(1, 1), skip_corrupt=False)


@pytest.mark.parametrize("case", ["noskip-corrupt", "video list", "gs"])
def test_cli_data_errors_are_one_line(keras_model, tmp_path, case):
    """A damaged record under --noskip-corrupt, a video list where TFRecords belong, an
    unreachable gs:// pattern: exit status 2 and one line naming the file, no traceback."""
    rng = np.random.default_rng(4)
    serialized = [make_sequence_example(
        [tf.io.encode_jpeg(f).numpy() for f in rng.integers(0, 255, (8, 48, 64, 3), np.uint8)],
        label).SerializeToString() for label in (0, 1, 2)]
    shard = tmp_path / "val.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for data in serialized:
            writer.write(data)
    _corrupt_payload(shard, serialized, 1)
    listing = tmp_path / "val_list.txt"
    listing.write_text("videos/a.mp4 0\nvideos/b.mp4 1\n")
    flags, message = {
        "noskip-corrupt": ([f"--data={shard}", "--noskip-corrupt"],
                           f"{shard}: record 1 is corrupt (corrupted record at "),
        "video list": ([f"--data={listing}"],
                       f"{listing} is not a TFRecord file (its first record header fails its "
                       "checksum); it looks like a video list"),
        "gs": (["--data=gs://squeezetime-no-such-bucket/*.tfrecord"],
               "cannot reach/read gs://squeezetime-no-such-bucket/"),
    }[case]
    result = subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.evaluate",
         f"--model={keras_model}", "--views=1x1", *flags],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr[-1000:]


def _prepared(folder, labels: list[int], names: dict[int, str], truncate_at: int | None = None):
    """One shard and the manifest squeezetime-prepare writes beside it (record count and
    class names); `truncate_at`: the file is cut in the middle of that record."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    path = folder / "val-00000-of-00001.tfrecord"
    serialized = [make_sequence_example(
        [tf.io.encode_jpeg(f).numpy() for f in rng.integers(0, 255, (8, 48, 64, 3), np.uint8)],
        label).SerializeToString() for label in labels]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data in serialized:
            writer.write(data)
    if truncate_at is not None:
        end = sum(12 + len(data) + 4 for data in serialized[:truncate_at]) + 40
        path.write_bytes(path.read_bytes()[:end])
    (folder / "manifest.json").write_text(json.dumps({
        "shards": [{"name": path.name, "records": len(labels)}],
        "classes": [{"index": i, "name": name, "videos": 1} for i, name in names.items()]}))
    return str(folder / "*.tfrecord")


def test_records_lost_after_a_damaged_record_are_counted_from_the_manifest(keras_model,
                                                                           tmp_path):
    """The reader finds nothing after a file is cut short; the manifest says how many
    records the file had, so each one missing is listed as left out."""
    pattern = _prepared(tmp_path / "cut", [0, 1, 2, 0, 1], dict(enumerate(NAMES)),
                        truncate_at=2)
    metrics = evaluate_model(str(keras_model), pattern, views=(1, 1))
    assert metrics["num_videos"] == 2 and metrics["num_skipped"] == 3
    assert [item["record"] for item in metrics["skipped"]] == [2, 3, 4]


def test_records_numbering_classes_otherwise_than_the_model_are_refused(keras_model, tmp_path):
    # Prepared from a folder missing class "a": "b" became index 0 and "c" index 1.
    shifted = _prepared(tmp_path / "shifted", [0, 1], {0: "b", 1: "c"})
    with pytest.raises(ValueError, match=r"the model \(.*model.keras\) names 2 class\(es\) "
                                         r"otherwise than the records of .* do \(0: 'a' there, "
                                         r"'b' in the records"):
        evaluate_model(str(keras_model), shifted, views=(1, 1))
    # The model's own order, and a --labels file the records disagree with.
    same = _prepared(tmp_path / "same", [0, 1, 2], dict(enumerate(NAMES)))
    assert evaluate_model(str(keras_model), same, views=(1, 1))["num_videos"] == 3
    swapped = tmp_path / "swapped.txt"
    swapped.write_text("b\na\nc\n")
    with pytest.raises(ValueError, match=r"--labels .*swapped.txt names 2 class\(es\)"):
        evaluate_model(str(keras_model), same, views=(1, 1), labels=str(swapped))
