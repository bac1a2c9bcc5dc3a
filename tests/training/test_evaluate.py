"""`squeezetime-evaluate` on real records: multi-view scoring of a `.keras` model checked
against NumPy, the test protocol of `config.json` by default (HMDB51's 2x3 at 286 included)
and flags over it, averaging of probabilities (not logits), corrupt records skipped and
reported, an official `.pth` checkpoint, errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime import SqueezeTime
from keras_squeezetime.training.evaluate import classification_metrics, evaluate_model
from keras_squeezetime.training.records import make_sequence_example
from tests.helpers.cli_runs import cli_runs

NAMES = ["a", "b", "c"]


PARITY_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "official_parity"

# The tinted videos: class c's are tinted in channel c, and the colour model (`_colour_model`
# with `TINT_LOGITS`) scores 6 x the clip's mean colour / 255, largest for the tint. The last
# video is labelled "a" but tinted as "b": a mistake the model makes, so that the metrics
# differ from one another (by hand: top-1 6/7; per class a 2/3, b 1, c 1; mean 8/9).
TINT_LOGITS = 6.0 * np.eye(3)
TINT_LABELS = [0, 1, 2, 0, 1, 2, 0]
TINT_CLASSES = [0, 1, 2, 0, 1, 2, 1]


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


@pytest.fixture(scope="module")
def tinted(tmp_path_factory) -> tuple[str, list[list[bytes]]]:
    """7 clips of 20 frames at 36x54 (the test short side: the crops of 32 are not resized)
    tinted as `TINT_CLASSES` say, labelled `TINT_LABELS`; returns the pattern and each
    video's JPEG frames. A ramp across the width makes the three crops differ, one over
    time the two clips: each view of a video scores differently."""
    root = tmp_path_factory.mktemp("tinted")
    rng = np.random.default_rng(6)
    videos = []
    with tf.io.TFRecordWriter(str(root / "val-0.tfrecord")) as writer:
        for label, tint in zip(TINT_LABELS, TINT_CLASSES):
            frames = 70 + rng.normal(0, 15, (20, 36, 54, 3))
            frames[..., tint] += rng.uniform(60, 100)
            frames[..., (tint + 1) % 3] += np.linspace(0, 50, 54)
            frames[..., (tint + 2) % 3] += np.linspace(0, 40, 20)[:, None, None]
            frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
            # 4:4:4 JPEGs: decoding a crop gives the pixels of the decoded frame's crop.
            jpegs = [tf.io.encode_jpeg(f, chroma_downsampling=False).numpy() for f in frames]
            writer.write(make_sequence_example(jpegs, label).SerializeToString())
            videos.append(jpegs)
    return str(root / "*.tfrecord"), videos


@pytest.fixture(scope="module")
def tint_model_file(tmp_path_factory) -> pathlib.Path:
    """The colour model of the tinted videos as a `.keras` file, with a config.json whose
    test protocol (2 clips x 3 crops of 32 at short side 36) differs from its training one."""
    folder = tmp_path_factory.mktemp("tint_model")
    _colour_model("softmax", TINT_LOGITS, frames=4).save(folder / "model.keras")
    config = {"frames": 4, "frame_interval": 2, "image_size": 32, "short_side": 40,
              "num_classes": 3, "width_multiplier": 0.25, "class_names": NAMES,
              "test_views": [2, 3], "test_short_side": 36, "test_image_size": 32}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.keras"


def _views(jpegs: list[bytes], clips: int, frames: int, interval: int, short_side: int,
           size: int) -> np.ndarray:
    """The `clips x 3` views `(views, T, size, size, 3)` of a video stored at `short_side`
    (nothing to resize), cut here: frames decoded with `tf.io.decode_jpeg`, mmaction's test
    sampling (clip starts `round(i * (N - span) / (clips - 1))`, span
    `(T - 1) * interval + 1`; one clip: `(N - span) // 2`) and `ThreeCrop` (offsets 0,
    2 * step, step along the long side, step = (long - size) // 2, centred on the short
    side)."""
    decoded = np.stack([tf.io.decode_jpeg(jpeg).numpy() for jpeg in jpegs]).astype(np.float32)
    count, height, width = decoded.shape[:3]
    assert min(height, width) == short_side
    span = (frames - 1) * interval + 1
    starts = ([(count - span) // 2] if clips == 1 else
              [round(i * (count - span) / (clips - 1)) for i in range(clips)])
    step = (width - size) // 2
    top = (height - size) // 2
    return np.stack([decoded[start + interval * np.arange(frames), top:top + size, x:x + size]
                     for start in starts for x in (0, 2 * step, step)])


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _tint_probabilities(videos: list[list[bytes]]) -> np.ndarray:
    """Each tinted video's mean over its 2 x 3 views of the colour model's softmax, in NumPy."""
    rows = []
    for jpegs in videos:
        views = _views(jpegs, clips=2, frames=4, interval=2, short_side=36, size=32)
        rows.append(_softmax(views.astype(np.float64).mean(axis=(1, 2, 3)) / 255
                             @ TINT_LOGITS).mean(axis=0))
    return np.stack(rows)


def test_multi_view_metrics_match_numpy_on_saved_predictions(tint_model_file, tinted,
                                                             tmp_path):
    pattern, videos = tinted
    metrics = evaluate_model(str(tint_model_file), pattern, batch_size=3, output=str(tmp_path))
    # Views and sampling came from the test protocol of config.json beside the model.
    assert metrics["sampling"] == {"frames": 4, "frame_interval": 2, "image_size": 32,
                                   "short_side": 36}
    assert metrics["views"] == {"clips": 2, "crops": 3} and metrics["num_videos"] == 7
    assert metrics["clips_scored"] == 7 * 6 and metrics["protocol"]["overridden"] == []
    assert metrics["protocol"]["source"] == str(tint_model_file.parent / "config.json")
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "metrics.json").read_text())

    # Each video's row is the mean of the softmaxes of its 6 views, as cut and scored here.
    expected = _tint_probabilities(videos)
    np.testing.assert_array_equal(expected.argmax(axis=1), TINT_CLASSES)  # tells them apart
    with np.load(tmp_path / "predictions.npz") as data:
        np.testing.assert_array_equal(data["labels"], TINT_LABELS)
        # The views are the same pixels; Keras averages them in float32: 4.6e-6 measured.
        np.testing.assert_allclose(data["probabilities"], expected, rtol=0, atol=1e-5)
    # By hand (the last video, an "a" tinted as "b", is the one mistake).
    assert saved["top1"] == pytest.approx(6 / 7) and saved["top5"] == 1.0  # 3 classes
    assert saved["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 1.0})
    assert saved["mean_class_accuracy"] == pytest.approx(8 / 9)
    assert saved["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert saved == json.loads(json.dumps(metrics))


def test_views_are_averaged_as_probabilities(tinted, tmp_path):
    """A model object, the views and sampling given: the first batch's two videos, each
    the mean of its views' softmaxes (computed here from views cut here)."""
    pattern, videos = tinted
    model = _colour_model("softmax", TINT_LOGITS, frames=4)
    metrics = evaluate_model(model, pattern, views=(2, 3), short_side=36, frame_interval=2,
                             batch_size=2, max_batches=1, output=str(tmp_path))
    assert metrics["num_videos"] == 2 and metrics["clips_scored"] == 2 * 6
    expected = _tint_probabilities(videos[:2])
    np.testing.assert_array_equal(expected.argmax(axis=1), TINT_LABELS[:2])
    with np.load(tmp_path / "predictions.npz") as data:
        np.testing.assert_array_equal(data["labels"], TINT_LABELS[:2])
        np.testing.assert_allclose(data["probabilities"], expected, rtol=0, atol=1e-5)
    assert metrics["top1"] == 1.0


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
    from tests.helpers import logits
    from tests.helpers.parity import LOGITS_TOLERANCE, relative_error

    checkpoint = PARITY_DIR / "squeezetime_w0.25_f16_112px.pth"
    root = tmp_path_factory.mktemp("pth_data")
    rng = np.random.default_rng(2)
    videos = []
    labels = [8, 5]  # the checkpoint's random weights favour class 8 on noise
    with tf.io.TFRecordWriter(str(root / "val.tfrecord")) as writer:
        for label in labels:
            frames = rng.integers(0, 255, size=(16, 112, 128, 3), dtype=np.uint8)
            videos.append([tf.io.encode_jpeg(f, chroma_downsampling=False).numpy()
                           for f in frames])
            writer.write(make_sequence_example(videos[-1], label).SerializeToString())
    metrics = evaluate_model(str(checkpoint), str(root / "*.tfrecord"), views=(1, 3),
                             frame_interval=1, image_size=112, short_side=112, batch_size=2,
                             output=str(tmp_path))
    assert metrics["num_classes"] == 10 and metrics["num_videos"] == 2
    assert metrics["sampling"]["frames"] == 16  # read from the checkpoint's stem

    # The reference: the checkpoint built with the fixture's configuration, checked against
    # the official model's logits, run on the views cut here; each row is the mean of the
    # three crops' softmaxes.
    with np.load(PARITY_DIR / "squeezetime_w0.25_f16_112px.npz") as data:
        official_video, official_logits = data["video_ncthw"], data["logits"]
    reference = SqueezeTime(input_shape=(16, 112, 112, 3), width_multiplier=0.25,
                            pos_embed_sizes=(56, 28, 14, 7), num_classes=10,
                            weights=str(checkpoint))
    pixels = (np.transpose(official_video, (0, 2, 3, 4, 1)) * [58.395, 57.12, 57.375]
              + [123.675, 116.28, 103.53])  # mmaction's ImageNet normalisation, undone
    assert relative_error(logits(reference, pixels), official_logits) <= LOGITS_TOLERANCE
    expected = np.stack([
        _softmax(logits(reference, _views(jpegs, clips=1, frames=16, interval=1, short_side=112,
                                          size=112)))
        .mean(axis=0) for jpegs in videos])
    # Guard: the videos score apart (8e-3) far beyond the tolerance, which is about twice
    # the 5.2e-7 measured: the row of the other video fails.
    assert np.abs(expected[0] - expected[1]).max() > 1e-3
    np.testing.assert_array_equal(expected.argmax(axis=1), [8, 8])
    with np.load(tmp_path / "predictions.npz") as data:
        np.testing.assert_array_equal(data["labels"], labels)
        np.testing.assert_allclose(data["probabilities"], expected, rtol=0, atol=1e-6)
    assert metrics["top1"] == 0.5


FLAG_ERRORS = {
    "views spelling": (["--model=x.keras", "--data=a", "--views=10by3"], "CLIPSxCROPS"),
    "views crops": (["--model=x.keras", "--data=a", "--views=2x2"], "crops 1 or 3"),
    "missing model": (["--model=/nonexistent/model.pth", "--data=a"], "does not exist"),
    "no model": (["--data=a"], "--model is required"),
}
DATA_ERRORS = ("noskip-corrupt", "video list", "gs")


@pytest.fixture(scope="module")
def cli_failures(keras_model, tmp_path_factory) -> types.SimpleNamespace:
    """squeezetime-evaluate's failing runs, in one process (`cli_runs`): the flag errors and
    the data errors of `test_cli_data_errors_are_one_line`, with the files they read."""
    tmp = tmp_path_factory.mktemp("evaluate_failures")
    rng = np.random.default_rng(4)
    serialized = [make_sequence_example(
        [tf.io.encode_jpeg(f).numpy() for f in rng.integers(0, 255, (8, 48, 64, 3), np.uint8)],
        label).SerializeToString() for label in (0, 1, 2)]
    shard = tmp / "val.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for data in serialized:
            writer.write(data)
    _corrupt_payload(shard, serialized, 1)
    listing = tmp / "val_list.txt"
    listing.write_text("videos/a.mp4 0\nvideos/b.mp4 1\n")
    data_flags = {
        "noskip-corrupt": [f"--data={shard}", "--noskip-corrupt"],
        "video list": [f"--data={listing}"],
        "gs": ["--data=gs://squeezetime-no-such-bucket/*.tfrecord"],
    }
    runs = {name: flags for name, (flags, _) in FLAG_ERRORS.items()}
    runs.update({name: [f"--model={keras_model}", "--views=1x1", *flags]
                 for name, flags in data_flags.items()})
    results = cli_runs("keras_squeezetime.training.cli.evaluate", runs, timeout=300)
    return types.SimpleNamespace(results=results, shard=shard, listing=listing)


@pytest.mark.parametrize("case", FLAG_ERRORS)
def test_cli_errors_are_clean(cli_failures, case):
    result, message = cli_failures.results[case], FLAG_ERRORS[case][1]
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


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
    """In-process from config.json; then `squeezetime-evaluate` with flags over it, which
    also checks that the CLI writes metrics.json and prints its summary."""
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
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    saved = json.loads((tmp_path / "flags" / "metrics.json").read_text())
    assert summary["top1"] == saved["top1"] and summary["views"] == saved["views"]
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


def _colour_model(activation, kernel=CROP_LOGITS, frames=2):
    """Mean colour of the clip (/255) -> Dense(3) with `kernel` -> `activation`."""
    import keras

    inputs = keras.Input((frames, 32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling3D()(keras.layers.Rescaling(1 / 255)(inputs))
    dense = keras.layers.Dense(3, use_bias=False, activation=activation)
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([kernel])
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
    offset = (sum(12 + len(data) + 4 for data in serialized[:index]) + 12
              + len(serialized[index]) // 2)
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
    warnings = [r.getMessage() for r in caplog.records
                if "Skipped corrupt record" in r.getMessage()]
    assert len(warnings) == 3 and "a.tfrecord" in warnings[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["num_skipped"] == 3

    # Unskipped, a corrupt record stops the run, named: the first in file order.
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'a.tfrecord'}: record 2 is corrupt \("):
        evaluate_model(str(keras_model), pattern, views=(1, 1), skip_corrupt=False)


@pytest.mark.parametrize("case", DATA_ERRORS)
def test_cli_data_errors_are_one_line(cli_failures, case):
    """A damaged record under --noskip-corrupt, a video list where TFRecords belong, an
    unreachable gs:// pattern: exit status 2 and one line naming the file, no traceback."""
    shard, listing = cli_failures.shard, cli_failures.listing
    message = {
        "noskip-corrupt": f"{shard}: record 1 is corrupt (corrupted record at ",
        "video list": (f"{listing} is not a TFRecord file (its first record header fails its "
                       "checksum); it looks like a video list"),
        "gs": "cannot reach/read gs://squeezetime-no-such-bucket/",
    }[case]
    result = cli_failures.results[case]
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
