"""tf.data pipelines from clip TFRecords (`records.py`) to SqueezeTime training batches.

Both pipelines yield `(clips, labels)`: float32 pixels in [0, 255], RGB, channels last, as
`SqueezeTime(include_preprocessing=True)` takes them, and int32 class indices.

- `train_dataset`: `(batch, T, S, S, 3)`, `(batch,)`; the file list reshuffled every epoch,
  `cycle_length` files (64) interleaved one record at a time, records shuffled in a buffer of
  `shuffle_buffer` (256), a random clip offset and the paper's augmentation (see
  `augment.py`); full batches only. Batches mix classes because `squeezetime-prepare` stores
  videos in a seeded random order; the interleave and buffer mix the rest, and bound what a
  class-sorted store can give (BENCHMARKS.md, "Batch composition").
- `eval_dataset`: one view per video gives `(batch, T, S, S, 3)` (validation, usable as
  `validation_data`). Several views (`num_clips * num_crops > 1`, e.g. 10 clips x 3 crops for
  the test protocol) give `(batch, views, T, S, S, 3)`, view `v` being clip `v // num_crops`,
  crop `v % num_crops`. To score, flatten to `(batch * views, T, S, S, 3)`, predict, reshape
  the probabilities to `(batch, views, classes)` and average over axis 1 (the official test
  averages probabilities). The last batch may be short: no test video is dropped. A batch
  holds `batch * views` clips (30 views of 16x224x224 floats are 290 MB per video): keep the
  test batch small.

Corrupt records: training (`PipelineConfig.skip_corrupt`, on by default) and evaluation with
`eval_dataset(..., skip_corrupt=True)` drop, with a logged warning, every record that fails
its TFRecord CRC (bytes changed after writing, a truncated file), does not parse, or holds a
frame without a readable JPEG header or of another size. The check reads headers only, right
after the reader; clip and label leave together, so nothing is mislabelled, and one bad video
among millions does not end a run. A frame whose JPEG body is broken beyond libjpeg's
recovery still raises in decoding and stops the run with that error: loud, never silent. A
TFRecord CRC failure ends the reading of that file (the reader cannot find the next record),
so the rest of that file is dropped too. tf.data's own warning names neither file nor
record: training counts each file's records (against the manifest's counts, given as
`expected_records`) and warns with the file's name when fewer came through (once per
process for the same file and count, though a run reads its data every epoch).
Evaluation skips only when asked and then reports every video it left out (`evaluate.py`,
from `with_keys`): a missing test video changes the accuracy.

Distribution: files are the unit of sharding. Under `strategy.experimental_distribute_dataset`
(pass the global batch) the dataset carries `AutoShardPolicy.FILE`, so each worker reads whole
files. Under `strategy.distribute_datasets_from_function` pass the function's `input_context`
and the global batch: the files are split between input pipelines here and batches are
per replica.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from absl import logging
import tensorflow as tf

from keras_squeezetime.model_config import (
    DEFAULT_FRAME_INTERVAL,
    DEFAULT_FRAMES,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SHORT_SIDE,
)
from keras_squeezetime.training import augment
from keras_squeezetime.training.records import parse_sequence_example, record_file_problem
from keras_squeezetime.training.graph_frame_indices import eval_indices, train_indices

AUTOTUNE = tf.data.AUTOTUNE
# A record holds a whole video: read megabytes at a time, but keep the read buffers of all
# the files open at once within a bound.
_READ_BUFFER_BYTES = 4 << 20
_READ_BUFFERS_TOTAL_BYTES = 64 << 20
_MIN_READ_BUFFER_BYTES = 256 << 10


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Clip geometry, augmentation switches and tf.data settings.

    The defaults are the Kinetics recipe: 16 frames every 4th, short side 256, 224 crops.
    Evaluation uses `short_side` and `image_size` too; for the K400 test protocol (short side
    224, three 224 crops) use `dataclasses.replace(config, short_side=224)`.

    Attributes:
      frames: frames per clip (T).
      frame_interval: step between sampled frames, in stored frames.
      image_size: output height and width (S).
      short_side: short side the frames are resized to before cropping.
      multiscale_crop: random multi-scale crop in training; off gives the centre crop.
      scales: crop side / short side choices of the multi-scale crop.
      hflip: random horizontal flip (p 0.5) in training. Switch off when classes depend on
        direction ("moving something left to right").
      color_jitter: mmaction2 `ColorJitter` in training, with the strengths below.
      brightness, contrast, saturation, hue: jitter strengths (0 leaves one out).
      jitter_order: order of the jitter operations (0 brightness, 1 contrast, 2 saturation,
        3 hue); None draws one per dataset from `seed`, as mmaction draws one per run.
      random_erasing: probability of erasing a random rectangle per clip (0 switches it off).
      shuffle_buffer: records held for shuffling in training. A record holds all stored frames
        of a video (7-8 MB for a 10 s Kinetics clip at prepare's defaults, so 256 records
        hold about 2 GB), so this sets most of the pipeline's memory.
      cycle_length: files read concurrently (interleaved one record at a time). With
        `shuffle_buffer` it decides how many shards a batch draws from; see
        `benchmarks/batch_composition.py` (BENCHMARKS.md, "Batch composition").
      skip_corrupt: drop (with a warning) training records that fail their CRC, parsing or
        the JPEG header check (see the module doc).
      deterministic: reproducible order and augmentation from `seed` (slower: no reordering).
      seed: seed of file and record shuffling and of augmentation; None draws one.
      threads: private tf.data thread pool size, with intra-op parallelism 1; None shares
        TensorFlow's pools.
      auto_shard_policy: policy for `experimental_distribute_dataset` on several workers.
    """

    frames: int = DEFAULT_FRAMES
    frame_interval: int = DEFAULT_FRAME_INTERVAL
    image_size: int = DEFAULT_IMAGE_SIZE
    short_side: int = DEFAULT_SHORT_SIDE
    multiscale_crop: bool = True
    scales: tuple[float, ...] = augment.MULTISCALE_SCALES
    hflip: bool = True
    color_jitter: bool = True
    brightness: float = augment.JITTER_BRIGHTNESS
    contrast: float = augment.JITTER_CONTRAST
    saturation: float = augment.JITTER_SATURATION
    hue: float = augment.JITTER_HUE
    jitter_order: tuple[int, ...] | None = None
    random_erasing: float = 0.25
    shuffle_buffer: int = 256
    cycle_length: int = 64
    skip_corrupt: bool = True
    deterministic: bool = False
    seed: int | None = None
    threads: int | None = None
    auto_shard_policy: tf.data.experimental.AutoShardPolicy = (
        tf.data.experimental.AutoShardPolicy.FILE
    )


# Suffixes of the annotation files squeezetime-prepare reads (video lists, Kinetics CSVs):
# passed where TFRecords belong, each would be read as one corrupt record.
_ANNOTATION_SUFFIXES = (".txt", ".csv")


def list_record_files(pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching one glob pattern or several.

    Raises:
      FileNotFoundError: a pattern matches no file (a mistyped one among several would
        otherwise leave its files out unsaid).
      ValueError: a matching `.txt` or `.csv` file is not a TFRecord file (an annotation
        list, which squeezetime-prepare turns into TFRecords). Other files are not opened
        here: a pattern may match thousands of remote shards.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    matches = {p: tf.io.gfile.glob(p) for p in patterns}
    unmatched = [p for p, found in matches.items() if not found]
    if len(unmatched) == len(patterns):
        raise FileNotFoundError(f"No TFRecord files match {patterns}.")
    if unmatched:
        raise FileNotFoundError(f"No TFRecord files match {unmatched} (of the patterns "
                                f"{patterns}).")
    files = sorted({path for found in matches.values() for path in found})
    for path in files:
        if path.lower().endswith(_ANNOTATION_SUFFIXES):
            problem = record_file_problem(path)
            if problem is not None:
                raise ValueError(
                    f"{path} is not a TFRecord file ({problem}); it looks like a video list: "
                    "training and evaluation read TFRecords, so run squeezetime-prepare on "
                    "it first and pass the TFRecords it writes.")
    return files


def train_dataset(
    pattern: str | Sequence[str],
    batch_size: int,
    config: PipelineConfig = PipelineConfig(),
    *,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = False,
    expected_records: Mapping[str, int] | None = None,
) -> tf.data.Dataset:
    """Augmented training batches `(clips (B, T, S, S, 3) float32, labels (B,) int32)`.

    Args:
      pattern: glob pattern(s) of TFRecord files of `SequenceExample` clips.
      batch_size: global batch size. With `input_context`, each pipeline batches
        `input_context.get_per_replica_batch_size(batch_size)`.
      config: clip geometry, augmentation and tf.data settings.
      input_context: from `distribute_datasets_from_function`; splits the files between
        input pipelines.
      repeat: repeat the records forever (reshuffled every pass); otherwise one epoch.
      expected_records: `{file: records}` (e.g. `squeezetime-prepare`'s manifest): with
        `config.skip_corrupt`, a file yielding fewer is reported by name.
    """
    seed = _base_seed(config)
    if config.jitter_order is None:
        config = dataclasses.replace(config, jitter_order=augment.jitter_order(seed))
    records = _records(
        pattern,
        input_context,
        config.cycle_length,
        config.deterministic,
        shuffle=True,
        seed=seed,
        skip_corrupt=config.skip_corrupt,
        expected_records=expected_records,
    )
    records = records.shuffle(config.shuffle_buffer, seed=_offset(seed, 1))
    if repeat:
        records = records.repeat()
    examples = _with_clip_seeds(records, seed)
    examples = examples.map(
        lambda frames, label, clip_seed: _train_example(frames, label, clip_seed, config),
        num_parallel_calls=AUTOTUNE,
        deterministic=config.deterministic,
    )
    batches = examples.batch(_pipeline_batch(batch_size, input_context), drop_remainder=True)
    return batches.prefetch(AUTOTUNE).with_options(_options(config, config.deterministic))


def eval_dataset(
    pattern: str | Sequence[str],
    batch_size: int,
    config: PipelineConfig = PipelineConfig(),
    num_clips: int = 1,
    num_crops: int = 1,
    *,
    input_context: tf.distribute.InputContext | None = None,
    skip_corrupt: bool = False,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """Evaluation batches in a fixed order, each video once (layout: see the module doc).

    Args:
      pattern: glob pattern(s) of TFRecord files.
      batch_size: videos per batch (global, as in `train_dataset`); the last may be short.
      config: uses `frames`, `frame_interval`, `short_side`, `image_size`, `cycle_length`.
      num_clips: evenly spaced clips per video (1 = the centre clip).
      num_crops: 1 (centre crop) or 3 (three crops along the long side).
      input_context: as in `train_dataset`.
      skip_corrupt: drop (with a logged warning) records that fail their CRC, parsing or the
        JPEG header check, as training does, instead of stopping with the error. Pair it
        with `with_keys` to report which videos were left out (`evaluate.py` does).
      with_keys: also yield each video's key `(file index in list_record_files(pattern),
        record position in its file)`, int64 `(B, 2)`.

    Returns:
      `(clips, labels)`, or `(clips, labels, keys)` with `with_keys`: clips
      `(B, T, S, S, 3)` for one view, `(B, views, T, S, S, 3)` for
      `views = num_clips * num_crops > 1`; labels `(B,)` int32.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}.")
    records = _records(
        pattern, input_context, config.cycle_length, deterministic=True, shuffle=False,
        skip_corrupt=skip_corrupt, with_keys=True,
    )

    def example(frames, label, key):
        views, label = _eval_example(frames, label, config, num_clips, num_crops)
        return (views, label, key) if with_keys else (views, label)

    examples = records.map(example, num_parallel_calls=AUTOTUNE, deterministic=True)
    batches = examples.batch(_pipeline_batch(batch_size, input_context))
    return batches.prefetch(AUTOTUNE).with_options(_options(config, deterministic=True))


def _records(
    pattern: str | Sequence[str],
    input_context: tf.distribute.InputContext | None,
    cycle_length: int,
    deterministic: bool,
    shuffle: bool,
    seed: int | None = None,
    skip_corrupt: bool = False,
    with_keys: bool = False,
    expected_records: Mapping[str, int] | None = None,
) -> tf.data.Dataset:
    """`(frames, label)` of each record, interleaved from this pipeline's share of the files;
    `(frames, label, key)` with `with_keys`, key = `[file index, record position]` int64.
    With `skip_corrupt`, a file of `expected_records` that yields fewer is reported."""
    files = list_record_files(pattern)
    expected = [(expected_records or {}).get(path, -1) for path in files]
    counted = skip_corrupt and not with_keys and any(count >= 0 for count in expected)
    dataset = tf.data.Dataset.from_tensor_slices(
        (files, tf.range(len(files), dtype=tf.int64), tf.constant(expected, tf.int64)))
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) < pipelines:
            raise ValueError(
                f"{len(files)} files cannot be split between {pipelines} input pipelines; "
                "write more shards."
            )
        # Shard before shuffling: every pipeline must split the same file order.
        dataset = dataset.shard(pipelines, pipeline_id)
        files = files[pipeline_id::pipelines]
    if shuffle:
        # A new file order every epoch (every new iterator, every pass of `repeat`).
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    cycle_length = max(1, min(cycle_length, len(files)))
    read_buffer = int(min(_READ_BUFFER_BYTES, max(_MIN_READ_BUFFER_BYTES,
                                                  _READ_BUFFERS_TOTAL_BYTES // cycle_length)))

    def read(path, file_index, expected_count):
        records = tf.data.TFRecordDataset(path, buffer_size=read_buffer)
        if with_keys:
            # Positions are counted before anything can drop a record.
            records = records.enumerate().map(
                lambda position, record: (*_parsed(record), tf.stack([file_index, position])))
        else:
            records = records.map(_parsed)
        if skip_corrupt:
            # Inside the reader's function, where FILE auto-sharding does not look: the
            # rewrite cannot walk through `ignore_errors` placed after the interleave.
            records = records.map(_screened).ignore_errors(log_warning=True)
            if counted:
                records = _counted(records, path, expected_count)
            records = _opened_first(path, records)
        return records

    return dataset.interleave(
        read,
        cycle_length=cycle_length,
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )


def _opened_first(path: tf.Tensor, records: tf.data.Dataset) -> tf.data.Dataset:
    """`records`, after `path` is opened (one byte read) outside their `ignore_errors`.

    A TFRecord reader that cannot open its file raises again at every next element without
    moving on, so under `ignore_errors` a shard deleted or made unreadable during a run was
    skipped forever: the run spun in place, logging. Opened here first, the file system's
    error (NotFoundError, PermissionDeniedError, ...) ends the pipeline instead.
    """
    first_byte = tf.data.FixedLengthRecordDataset(path, record_bytes=1, buffer_size=1).take(1)
    # Yields nothing; `flat_map` only gives the empty probe the records' element structure.
    opened = first_byte.filter(lambda _: False).flat_map(lambda _: records)
    return opened.concatenate(records)


def _counted(records: tf.data.Dataset, path: tf.Tensor, expected: tf.Tensor) -> tf.data.Dataset:
    """`records` unchanged; after the last, a warning naming `path` if fewer than
    `expected` (>= 0) came through. An end marker is counted in and filtered out."""
    empty = tf.nest.map_structure(
        lambda spec: tf.zeros([0 if d is None else d for d in spec.shape], spec.dtype),
        records.element_spec)
    marked = records.map(lambda *record: (record, False)).concatenate(
        tf.data.Dataset.from_tensors((empty, True)))

    def count(seen, item):
        record, is_end = item
        short = tf.logical_and(is_end, tf.logical_and(expected >= 0, seen < expected))
        warned = tf.cond(short, lambda: tf.py_function(_warn_short_file, [path, seen, expected],
                                                       tf.bool),
                         lambda: tf.constant(False))
        with tf.control_dependencies([warned]):
            return seen + 1, (record, is_end)

    return (marked.scan(tf.constant(0, tf.int64), count)
            .filter(lambda record, is_end: tf.logical_not(is_end))
            .map(lambda record, is_end: record))


# What `_warn_short_file` has said in this process: a run repeats its data every epoch, and
# the same damage need not be logged again unless its figures change.
_SHORT_FILES_REPORTED: set[tuple[str, int, int]] = set()


def _warn_short_file(path: tf.Tensor, read: tf.Tensor, expected: tf.Tensor) -> bool:
    report = (path.numpy().decode("utf-8", "replace"), int(read), int(expected))
    if report in _SHORT_FILES_REPORTED:
        return True
    _SHORT_FILES_REPORTED.add(report)
    logging.warning("%s: %d of its %d records read; the others are corrupt and training skips "
                    "them (after a failed checksum, the rest of the file).",
                    *report)
    return True


def corrupt_record_message(files: Sequence[str]) -> str | None:
    """`"<path>: record <n> is corrupt (<reason>)"` for the first record of `files`, in
    order, that `skip_corrupt` would drop, or None when every record reads.

    For naming the damage after a pipeline without `skip_corrupt` stopped with
    TensorFlow's error, which names neither the file nor the record.
    """
    from keras_squeezetime.training.tf_errors import tf_error_text

    for path in files:
        found = first_corrupt_record(path)
        if found is not None:
            position, error = found
            return f"{path}: record {position} is corrupt ({tf_error_text(error)})"
    return None


def first_corrupt_record(path: str) -> tuple[int, tf.errors.OpError] | None:
    """`(position, error)` of the first record of `path` that `skip_corrupt` would drop
    (failed CRC, no parse, a frame without a JPEG header or of another size), or None.

    Reads the file record by record, frame headers only: meant for naming the record after
    a pipeline without `skip_corrupt` stopped with an error that names neither.
    """
    records = tf.data.TFRecordDataset(path).map(_parsed).map(_screened)
    iterator = iter(records)
    position = 0
    while True:
        try:
            next(iterator)
        except StopIteration:
            return None
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            return position, error
        position += 1


def _parsed(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(frames [N] JPEG strings, label)` of one serialized record."""
    record = parse_sequence_example(serialized)
    return record["frames"], record["label"]


def _screened(frames: tf.Tensor, label: tf.Tensor, *key: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """The clip unchanged, or an error if it has no frame, a non-JPEG frame or an odd size.

    Only headers are read (cheap): a record whose bytes changed after writing already fails
    its TFRecord CRC in the reader, and one that does not parse fails in `_parsed`.
    """
    shapes = tf.map_fn(
        tf.io.extract_jpeg_shape, frames, fn_output_signature=tf.TensorSpec([3], tf.int32)
    )
    checks = [
        tf.debugging.assert_positive(tf.size(frames), message="record without frames"),
        tf.debugging.assert_equal(shapes, shapes[:1], message="frames of different sizes"),
    ]
    with tf.control_dependencies(checks):
        return (tf.identity(frames), label, *key)


def _train_example(
    frames: tf.Tensor, label: tf.Tensor, clip_seed: tf.Tensor, config: PipelineConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """One augmented clip `(T, S, S, 3)` and its label from a video's JPEG frames."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(clip_seed, 5))
    sample_seed, crop_seed, flip_seed, jitter_seed, erase_seed = seeds
    indices = train_indices(
        tf.shape(frames)[0], config.frames, config.frame_interval, sample_seed
    )
    jpegs = tf.gather(frames, indices)  # decode only the sampled frames
    height, width = augment.frame_shape(jpegs[0])
    if config.multiscale_crop:
        box = augment.multiscale_crop_box(
            height, width, crop_seed, config.short_side, config.image_size, config.scales
        )
    else:
        box = augment.view_crop_boxes(height, width, config.short_side, config.image_size)[0]
    clip = augment.decode_crop_resize(jpegs, box, config.short_side, config.image_size)
    if config.hflip:
        clip = augment.random_flip(clip, flip_seed)
    if config.color_jitter:
        clip = augment.color_jitter(
            clip,
            jitter_seed,
            config.brightness,
            config.contrast,
            config.saturation,
            config.hue,
            config.jitter_order,
        )
    if config.random_erasing > 0:
        clip = augment.random_erasing(clip, erase_seed, config.random_erasing)
    size = config.image_size
    return tf.ensure_shape(clip, [config.frames, size, size, 3]), label


def _eval_example(
    frames: tf.Tensor, label: tf.Tensor, config: PipelineConfig, num_clips: int, num_crops: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """All views `(views, T, S, S, 3)` of one video, or `(T, S, S, 3)` for a single view."""
    indices = eval_indices(tf.shape(frames)[0], config.frames, config.frame_interval, num_clips)
    jpegs = tf.gather(frames, tf.reshape(indices, [-1]))
    height, width = augment.frame_shape(jpegs[0])
    boxes = augment.view_crop_boxes(
        height, width, config.short_side, config.image_size, num_crops
    )
    size, frames = config.image_size, config.frames
    crops = [
        augment.decode_crop_resize(jpegs, boxes[crop], config.short_side, size)
        for crop in range(num_crops)
    ]
    # [crops, clips*T, ...] -> [clips, crops, T, ...]: view = clip * num_crops + crop.
    views = tf.stack(crops, axis=0)
    views = tf.reshape(views, [num_crops, num_clips, frames, size, size, 3])
    views = tf.reshape(
        tf.transpose(views, [1, 0, 2, 3, 4, 5]), [num_clips * num_crops, frames, size, size, 3]
    )
    if num_clips * num_crops == 1:
        views = views[0]
    return views, label


def _with_clip_seeds(records: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Adds to each `(frames, label)` the stateless seed `[2]` of all the clip's random draws.

    The seeds come from a seeded random op in a *sequential* map, which draws in element order:
    a seeded run replays exactly, and the parallel map after it cannot change which clip gets
    which draw. (A zip with `Dataset.random` or a `scan` would do the same but hides the file
    reader from `AutoShardPolicy.FILE`, which only walks through maps, shuffles, batches.)
    A new iterator (epoch) may restart the same seed sequence, but over reshuffled records,
    so each video still meets fresh draws.
    """

    def attach(frames, label):
        clip_seed = tf.random.uniform([2], 0, tf.int64.max, dtype=tf.int64, seed=seed)
        return frames, label, clip_seed

    return records.map(attach)


def _pipeline_batch(batch_size: int, input_context: tf.distribute.InputContext | None) -> int:
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


def _base_seed(config: PipelineConfig) -> int | None:
    """The configured seed; deterministic mode without one uses 0."""
    if config.seed is None and config.deterministic:
        return 0
    return config.seed


def _offset(seed: int | None, offset: int) -> int | None:
    """Distinct but reproducible seeds for the separate random streams."""
    return None if seed is None else seed + offset


def _options(config: PipelineConfig, deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = config.auto_shard_policy
    if config.threads is not None:
        options.threading.private_threadpool_size = config.threads
        options.threading.max_intra_op_parallelism = 1
    return options
