"""The train/eval tf.data pipelines on small TFRecords whose pixels encode frame and label."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime.training.pipeline import PipelineConfig, eval_dataset, train_dataset
from keras_squeezetime.training.records import make_sequence_example
from tests.helpers.class_mix import expected_distinct_classes

HEIGHT, WIDTH = 48, 64
# 8 frames every 2nd, short side 40 (48x64 frames -> 40x53), 32x32 crops.
SMALL = PipelineConfig(
    frames=8, frame_interval=2, image_size=32, short_side=40, shuffle_buffer=8, cycle_length=2
)
PLAIN = dataclasses.replace(SMALL, color_jitter=False, random_erasing=0.0)


def _coded_frame(index: int, label: int) -> np.ndarray:
    """Flat colour: red = 8 * frame index, green = 20 + 40 * label."""
    return np.broadcast_to(
        np.array([8 * index, 20 + 40 * label, 128], np.uint8), (HEIGHT, WIDTH, 3)
    )


def _write(path, clips) -> str:
    """Writes `(label, frames)` clips, frames as `(H, W, 3)` uint8 arrays, to a TFRecord."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for label, frames in clips:
            jpegs = [tf.io.encode_jpeg(frame, quality=95).numpy() for frame in frames]
            writer.write(make_sequence_example(jpegs, label).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def coded_records(tmp_path_factory):
    """Four files, labels 0..5; clip lengths 12..31 frames (12 is shorter than 8 x 2)."""
    root = tmp_path_factory.mktemp("coded")
    layout = {0: [(0, 20), (1, 31)], 1: [(2, 12)], 2: [(3, 25), (4, 16)], 3: [(5, 28)]}
    for shard, clips in layout.items():
        _write(
            root / f"clips-{shard}.tfrecord",
            [(label, [_coded_frame(i, label) for i in range(n)]) for label, n in clips],
        )
    lengths = {label: n for clips in layout.values() for label, n in clips}
    return str(root / "clips-*.tfrecord"), lengths


def _decode_codes(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices `(B, T)` and labels `(B,)` read back from the coded colours."""
    means = clips.mean(axis=(-3, -2))  # (..., T, 3)
    indices = np.rint(means[..., 0] / 8).astype(int)
    labels = np.rint((means[..., 1] - 20) / 40).astype(int)
    return indices, labels[..., 0]


def _all(dataset) -> tuple[np.ndarray, np.ndarray]:
    clips, labels = zip(*[(c.numpy(), y.numpy()) for c, y in dataset])
    return np.concatenate(clips), np.concatenate(labels)


def test_train_batches_shapes_values_and_labels(coded_records):
    pattern, lengths = coded_records
    clips, labels = _all(train_dataset(pattern, 2, PLAIN))
    assert clips.shape == (6, 8, 32, 32, 3) and clips.dtype == np.float32
    assert labels.dtype == np.int32 and sorted(labels) == [0, 1, 2, 3, 4, 5]
    indices, coded_labels = _decode_codes(clips)
    np.testing.assert_array_equal(coded_labels, labels)  # each clip kept its own label
    for clip_indices, label in zip(indices, labels):
        n = lengths[label]
        start = clip_indices[0]
        assert 0 <= start <= max(n - 16, 0)
        np.testing.assert_array_equal(clip_indices, (start + 2 * np.arange(8)) % n)


def test_train_drops_the_last_partial_batch(coded_records):
    pattern, _ = coded_records
    assert [c.shape[0] for c, _ in train_dataset(pattern, 4, PLAIN)] == [4]


def test_full_augmentation_output_range(coded_records):
    pattern, _ = coded_records
    clips, _ = _all(train_dataset(pattern, 3, dataclasses.replace(SMALL, random_erasing=1.0)))
    assert clips.min() >= 0 and clips.max() <= 255
    assert len(np.unique(clips)) > 100  # jitter and noise changed the flat colours


def test_val_centre_clip(coded_records):
    pattern, lengths = coded_records
    clips, labels = _all(eval_dataset(pattern, 4, SMALL))
    assert clips.shape == (6, 8, 32, 32, 3) and sorted(labels) == [0, 1, 2, 3, 4, 5]
    indices, coded_labels = _decode_codes(clips)
    np.testing.assert_array_equal(coded_labels, labels)
    for clip_indices, label in zip(indices, labels):
        n = lengths[label]
        start = max(n - 15, 0) // 2  # window (8 - 1) * 2 + 1 = 15
        np.testing.assert_array_equal(clip_indices, (start + 2 * np.arange(8)) % n)


def test_multi_view_layout(tmp_path):
    # Frames whose blue falls from left to right tell the crops apart.
    ramp = np.linspace(250, 10, WIDTH).astype(np.uint8)
    frames = []
    for i in range(30):
        frame = _coded_frame(i, 1).copy()
        frame[..., 2] = ramp
        frames.append(frame)
    pattern = _write(tmp_path / "views.tfrecord", [(1, frames)])
    # Test protocol at short side = crop: 48x64 -> 32x43, three 32x32 crops along the width.
    config = dataclasses.replace(SMALL, short_side=32)
    clips, labels = _all(eval_dataset(pattern, 1, config, num_clips=2, num_crops=3))
    assert clips.shape == (1, 6, 8, 32, 32, 3) and labels.tolist() == [1]
    indices, _ = _decode_codes(clips[0])
    # Two clips, starts 0 and 30 - 15 = 15; view v is clip v // 3.
    for view in range(6):
        start = [0, 15][view // 3]
        np.testing.assert_array_equal(indices[view], start + 2 * np.arange(8))
    blue = clips[0, :, :, :, :, 2].mean(axis=(1, 2, 3))
    for clip in (0, 3):
        left, right, middle = blue[clip : clip + 3]
        assert left > middle > right


def test_flip_off_keeps_left_right(tmp_path):
    ramp = np.linspace(240, 15, WIDTH).astype(np.uint8)  # bright left, dark right
    frame = np.broadcast_to(ramp[None, :, None], (HEIGHT, WIDTH, 3))
    pattern = _write(tmp_path / "ramp.tfrecord", [(0, [frame] * 20)] * 8)

    def left_brighter(hflip):
        config = dataclasses.replace(SMALL, hflip=hflip, random_erasing=0.0)
        clips, _ = _all(train_dataset(pattern, 8, config, repeat=True).take(4))
        return (clips[..., :4, :].mean(axis=(1, 2, 3, 4)) > clips[..., -4:, :].mean(
            axis=(1, 2, 3, 4)
        ))

    assert left_brighter(False).all()
    assert not left_brighter(True).all()  # flipping on does mirror some clips


def test_augmentation_identical_across_frames(tmp_path):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    pattern = _write(tmp_path / "still.tfrecord", [(0, [frame] * 20)] * 4)
    # Erasing fills fresh noise per frame (as mmaction); everything else must match.
    clips, _ = _all(train_dataset(pattern, 4, dataclasses.replace(SMALL, random_erasing=0.0)))
    for clip in clips:
        for other in clip[1:]:
            np.testing.assert_array_equal(other, clip[0])
    assert not np.array_equal(clips[0], clips[1])  # but clips differ from each other


def test_deterministic_mode_replays(coded_records):
    pattern, _ = coded_records

    def run(seed):
        config = dataclasses.replace(SMALL, deterministic=True, seed=seed)
        return _all(train_dataset(pattern, 2, config))

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_input_contexts_read_disjoint_files(coded_records):
    pattern, _ = coded_records
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, num_replicas_in_sync=2)
        batches = list(train_dataset(pattern, 2, PLAIN, input_context=context))
        assert all(clips.shape[0] == 1 for clips, _ in batches)  # per-replica batch 2 / 2
        seen.append({int(y) for _, labels in batches for y in labels})
    # Files 0 and 2 go to pipeline 0 (labels 0, 1, 3, 4), files 1 and 3 to pipeline 1 (2, 5).
    assert seen == [{0, 1, 3, 4}, {2, 5}]


@pytest.mark.parametrize("which", ["train", "eval"])
def test_file_auto_sharding_splits_whole_files(coded_records, which):
    # What `experimental_distribute_dataset` applies on each of 2 workers under
    # AutoShardPolicy.FILE; it raises if the rewrite cannot reach the file reader.
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    pattern, _ = coded_records
    make = {"train": lambda: train_dataset(pattern, 1, PLAIN), "eval": lambda: eval_dataset(
        pattern, 1, PLAIN)}[which]
    seen = [
        sorted(int(y) for _, labels in _AutoShardDataset(make(), 2, worker) for y in labels)
        for worker in range(2)
    ]
    assert seen == [[0, 1, 3, 4], [2, 5]]


def test_corrupt_record_is_dropped_in_training_and_fails_evaluation(tmp_path):
    good = [_coded_frame(i, 2) for i in range(20)]
    path = tmp_path / "mixed.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(make_sequence_example([b"not a jpeg"] * 20, 4).SerializeToString())
        for _ in range(3):
            jpegs = [tf.io.encode_jpeg(f).numpy() for f in good]
            writer.write(make_sequence_example(jpegs, 2).SerializeToString())
    clips, labels = _all(train_dataset(str(path), 1, PLAIN))
    assert labels.tolist() == [2, 2, 2]
    np.testing.assert_array_equal(_decode_codes(clips)[1], labels)
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)jpeg"):  # the bad frames
        _all(eval_dataset(str(path), 1, PLAIN))


def test_training_names_a_file_that_yields_fewer_records_than_expected(tmp_path, caplog):
    """tf.data's own warning names no file; with the manifest's counts training does: a
    bad frame drops its record, a failed checksum the rest of the file, an intact file with
    its count says nothing."""
    jpegs = [tf.io.encode_jpeg(_coded_frame(i, 1)).numpy() for i in range(20)]
    payloads = [make_sequence_example(jpegs, label).SerializeToString() for label in range(4)]
    bad_frame, bad_checksum, intact = (str(tmp_path / f"{name}.tfrecord")
                                       for name in ("bad_frame", "bad_checksum", "intact"))
    for path in (bad_frame, bad_checksum, intact):
        with tf.io.TFRecordWriter(path) as writer:
            for index, payload in enumerate(payloads):
                if path == bad_frame and index == 1:
                    payload = make_sequence_example([b"not a jpeg"] * 20, 1).SerializeToString()
                writer.write(payload)
    data = bytearray(open(bad_checksum, "rb").read())
    second = 8 + 4 + len(payloads[0]) + 4 + 8 + 4  # the second record's payload starts here
    data[second + 100] ^= 0xFF
    open(bad_checksum, "wb").write(bytes(data))

    counts = {bad_frame: 4, bad_checksum: 4, intact: 4}
    with caplog.at_level("WARNING"):
        _, labels = _all(train_dataset([bad_frame, bad_checksum, intact], 1, PLAIN,
                                       expected_records=counts))
    assert sorted(labels.tolist()) == sorted([0, 2, 3] + [0] + [0, 1, 2, 3])
    warnings = sorted(r.getMessage() for r in caplog.records if "records read" in r.getMessage())
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"{bad_checksum}: 1 of its 4 records read")
    assert warnings[1].startswith(f"{bad_frame}: 3 of its 4 records read")

    caplog.clear()
    with caplog.at_level("WARNING"):
        _all(train_dataset([intact], 1, PLAIN, expected_records=counts))
    assert not [r for r in caplog.records if "records read" in r.getMessage()]


# One 8x8 frame per record and no augmentation: only the order of the records matters here.
ORDER_ONLY = PipelineConfig(
    frames=1, frame_interval=1, image_size=8, short_side=8, multiscale_crop=False, hflip=False,
    color_jitter=False, random_erasing=0.0, seed=0, deterministic=True,
)


def _write_labels(path, labels) -> None:
    jpeg = tf.io.encode_jpeg(np.full((8, 8, 3), 128, np.uint8)).numpy()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for label in labels:
            writer.write(make_sequence_example([jpeg], int(label)).SerializeToString())


def test_file_order_is_reshuffled_every_epoch(tmp_path):
    for index in range(12):
        _write_labels(tmp_path / f"f-{index:02d}.tfrecord", [index])
    # One file at a time and no record buffer: the labels read are the file order.
    config = dataclasses.replace(ORDER_ONLY, cycle_length=1, shuffle_buffer=1)
    dataset = train_dataset(str(tmp_path / "*.tfrecord"), 12, config)
    # Keras starts a new iterator every epoch.
    first, second = (next(iter(dataset))[1].numpy().tolist() for _ in range(2))
    repeated = train_dataset(str(tmp_path / "*.tfrecord"), 12, config, repeat=True)
    passes = [labels.numpy().tolist() for _, labels in repeated.take(2)]
    for order in (first, second, *passes):
        assert sorted(order) == list(range(12))
    assert first != second and passes[0] != passes[1]
    assert first != list(range(12))


def test_class_sorted_shards_give_mixed_batches(tmp_path):
    # A class-sorted store, one class per shard (what a class-sorted list written in list
    # order gives): only the pipeline can mix it.
    classes, per_class, batch = 40, 25, 32
    for label in range(classes):
        _write_labels(tmp_path / f"clips-{label:05d}.tfrecord", [label] * per_class)
    dataset = train_dataset(str(tmp_path / "*.tfrecord"), batch, ORDER_ONLY)
    distinct = [len(np.unique(labels.numpy())) for _, labels in dataset]

    assert len(distinct) == classes * per_class // batch
    # Random batches hold this many classes on average; reading 8 files at a time through
    # a 64-record buffer (the defaults before) gave half of it (11.4 of 22.4).
    expected = expected_distinct_classes([per_class] * classes, batch)
    assert np.mean(distinct) >= 0.85 * expected, (np.mean(distinct), expected)


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No TFRecord files match \[.*none-\*"):
        train_dataset(str(tmp_path / "none-*.tfrecord"), 2)
    # One pattern of several matching nothing is named too, not left out unsaid.
    found, typo = str(tmp_path / "found.tfrecord"), str(tmp_path / "fuond.tfrecord")
    _write_labels(found, [0])
    with pytest.raises(FileNotFoundError, match=rf"No TFRecord files match \['{typo}'\] \(of"):
        train_dataset([found, typo], 1)


# A shard deleted after the pipeline listed it; each pipeline's error or "HUNG" on stdout.
# In a child process: a reader spinning on the missing file cannot be stopped in-process.
_DELETED_SHARD_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    import tensorflow as tf
    from keras_squeezetime.training.pipeline import PipelineConfig, eval_dataset, train_dataset
    from keras_squeezetime.training.tf_errors import tf_error_text
    kept, deleted = sys.argv[1:3]
    config = PipelineConfig(frames=1, frame_interval=1, image_size=8, short_side=8,
                            multiscale_crop=False, hflip=False, color_jitter=False,
                            random_erasing=0.0, cycle_length=1, shuffle_buffer=1)
    train = iter(train_dataset([kept, deleted], 1, config, repeat=True))
    next(train)  # read before the deletion: a run that had started
    evaluation = eval_dataset([kept, deleted], 1, config, skip_corrupt=True)
    os.remove(deleted)
    pipelines = {"train": lambda: [next(train) for _ in range(50)],
                 "eval": lambda: list(evaluation)}
    for name, read in pipelines.items():
        outcome = ["HUNG"]
        def attempt():
            try:
                read()
                outcome[0] = "no error"
            except tf.errors.OpError as error:
                outcome[0] = type(error).__name__ + ": " + tf_error_text(error)
        reader = threading.Thread(target=attempt, daemon=True)
        reader.start()
        reader.join(60)
        print("RESULT", name, outcome[0], flush=True)
    os._exit(0)  # a spinning reader would keep the process alive
    """
)


def test_a_shard_deleted_during_a_run_ends_it_naming_the_file(tmp_path):
    """Skipping corrupt records must not skip a file that cannot be opened: its reader
    would raise again at every element and the run would spin forever."""
    kept, deleted = tmp_path / "kept.tfrecord", tmp_path / "deleted.tfrecord"
    _write_labels(kept, [0])
    _write_labels(deleted, [1])
    result = subprocess.run(
        [sys.executable, "-c", _DELETED_SHARD_SCRIPT, str(kept), str(deleted)],
        capture_output=True, text=True, timeout=300,
    )
    outcomes = dict(line.split(" ", 2)[1:] for line in result.stdout.splitlines()
                    if line.startswith("RESULT "))
    assert set(outcomes) == {"train", "eval"}, result.stderr[-3000:]
    for outcome in outcomes.values():
        assert outcome.startswith(f"NotFoundError: {deleted}"), outcomes


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from keras_squeezetime.training.pipeline import PipelineConfig, train_dataset
    config = PipelineConfig(frames=8, frame_interval=2, image_size=32, short_side=40,
                            color_jitter=False, random_erasing=0.0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync}
    dist = strategy.experimental_distribute_dataset(train_dataset(sys.argv[1], 4, config))
    clips, labels = next(iter(dist))
    out["global"] = [list(c.shape) for c in strategy.experimental_local_results(clips)]
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(sys.argv[1], 4, config, input_context=ctx)
    )
    clips, labels = next(iter(dist))
    out["from_function"] = [list(c.shape) for c in strategy.experimental_local_results(clips)]
    print("RESULT" + json.dumps(out))
    """
)


def test_mirrored_strategy_gets_per_replica_batches(coded_records):
    pattern, _ = coded_records
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, pattern],
        capture_output=True, text=True, timeout=300, env=env,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, result.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT"):])
    assert out["replicas"] == 2
    assert out["global"] == [[2, 8, 32, 32, 3]] * 2  # global batch 4 split over 2 replicas
    assert out["from_function"] == [[2, 8, 32, 32, 3]] * 2
