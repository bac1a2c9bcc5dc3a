"""The datasets of a training run: endless augmented training batches, validation batches
in the recipe's views, the frame-order control, and record counting.
"""

from __future__ import annotations

import dataclasses

from absl import logging
import tensorflow as tf

from keras_squeezetime.training import pipeline, records, shard_manifest
from keras_squeezetime.training.tf_errors import tf_error_text


def train_dataset(
    files: list[str],
    global_batch: int,
    data_config: pipeline.PipelineConfig,
    shuffle_frames: bool = False,
) -> tf.data.Dataset:
    """Endless augmented training batches (epochs are `steps_per_epoch` long)."""
    data = pipeline.train_dataset(files, global_batch, data_config, repeat=True,
                                  expected_records=manifest_counts(files))
    return shuffle_clip_frames(data, data_config.seed) if shuffle_frames else data


def validation_dataset(
    files: list[str],
    global_batch: int,
    data_config: pipeline.PipelineConfig,
    shuffle_frames: bool = False,
    multi_worker: bool = False,
    full_batches_only: bool = False,
    views: tuple[int, int] = (1, 1),
) -> tf.data.Dataset:
    """Validation batches for monitoring during training, `views` = (clips, crops) per video.

    One view (the centre clip and crop) gives `(B, T, S, S, 3)` batches, usable as `fit`'s
    `validation_data`; several (HMDB51's 2 x 3) give `(B, clips * crops, T, S, S, 3)` as
    `pipeline.eval_dataset` does, scored by `callbacks.MultiViewValidation`.

    Across workers the records are split (not the files): a validation set often has fewer
    files than there are workers. With several replicas, a short last batch is dropped:
    splitting it can leave a replica an empty batch, which Keras' batch norm rejects. Exact
    numbers on every video come from `squeezetime-evaluate`.
    """
    if multi_worker:
        data_config = dataclasses.replace(
            data_config, auto_shard_policy=tf.data.experimental.AutoShardPolicy.DATA
        )
    data = pipeline.eval_dataset(files, global_batch, data_config, *views)
    if full_batches_only:
        data = data.filter(lambda clips, labels: tf.shape(labels)[0] == global_batch)
    # Fixed seed: the control's validation clips are the same shuffles every epoch.
    return shuffle_clip_frames(data, 1234) if shuffle_frames else data


def shuffle_clip_frames(dataset: tf.data.Dataset, seed: int | None = None) -> tf.data.Dataset:
    """Permutes the frames of every clip independently: `(B, T, H, W, 3)` batches, or
    `(B, views, T, H, W, 3)` (each view of a video gets its own order).

    Each clip keeps exactly its frames (every single-frame and bag-of-frames cue) and
    loses their order: the control for what a model learns from time.
    """
    base = tf.constant([0 if seed is None else seed, 0x5F], tf.int64)
    time_axis = len(dataset.element_spec[0].shape) - 4

    @tf.autograph.experimental.do_not_convert  # plain tensor ops: nothing to convert
    def shuffle(index, batch):
        clips, labels = batch
        shape = tf.shape(clips)
        noise = tf.random.stateless_uniform(
            shape[: time_axis + 1], tf.random.experimental.stateless_fold_in(base, index)
        )
        order = tf.argsort(noise, axis=time_axis)
        return tf.gather(clips, order, axis=time_axis, batch_dims=time_axis), labels

    return dataset.enumerate().map(shuffle, num_parallel_calls=tf.data.AUTOTUNE)


def count_records(files: list[str]) -> tuple[int, dict[int, str]]:
    """Records in `files` and the class names found, `(count, {index: text})`.

    Uses the record counts and class names of `prepare_dataset`'s manifest beside
    the files when it lists them all; otherwise reads the files once.
    """
    from_manifests = shard_manifest.read_shard_index(files)
    if from_manifests is not None:
        counts, texts = from_manifests
        return sum(counts.values()), texts
    count, texts = 0, {}
    features = {
        records.LABEL_INDEX_KEY: records.CONTEXT_FEATURES[records.LABEL_INDEX_KEY],
        records.LABEL_TEXT_KEY: records.CONTEXT_FEATURES[records.LABEL_TEXT_KEY],
    }
    for path in files:
        try:
            read = _count_file(path, features, texts, batch=256)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
            # Again record by record, to report where: the count goes on (training's reader
            # drops the record and the rest of its file too; see `pipeline`), so one bad
            # video does not stop the run before it starts.
            read = _count_file(path, features, texts, batch=1, report=True)
        count += read
    return count, texts


def _count_file(path: str, features: dict, texts: dict[int, str], batch: int,
                report: bool = False) -> int:
    read = 0
    iterator = iter(tf.data.TFRecordDataset(path).batch(batch))
    while True:
        try:
            serialized = next(iterator)
            context, _, _ = tf.io.parse_sequence_example(serialized, context_features=features)
        except StopIteration:
            return read
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            if not report:
                raise
            logging.warning("%s: record %d is corrupt (%s); training skips it and the rest of "
                            "this file.", path, read, tf_error_text(error))
            return read
        read += int(serialized.shape[0])
        for index, text in zip(context[records.LABEL_INDEX_KEY].numpy(),
                               context[records.LABEL_TEXT_KEY].numpy()):
            if text:
                texts.setdefault(int(index), text.decode("utf-8"))


def manifest_counts(files: list[str]) -> dict[str, int] | None:
    """`{file: records}` from `prepare_dataset`'s manifest beside the files, or None
    unless manifests list every file."""
    from_manifests = shard_manifest.read_shard_index(files)
    return None if from_manifests is None else from_manifests[0]
