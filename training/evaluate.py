"""Evaluation library behind `squeezetime-evaluate`: multi-view accuracy of a model.

`evaluate_model` scores every video of a TFRecord set over `clips x crops` views and
returns top-1/top-5, mean class accuracy, per-class accuracy and the confusion matrix. With
`output` it also writes `metrics.json`, `predictions.npz` (averaged probabilities and labels,
for any later analysis) and `confusion_matrix.png`.

Protocol: by default the test protocol recorded in the model's `config.json`
(`ModelConfig.test_views`, `test_short_side`, `test_image_size`; the Kinetics recipes test
10 clips x 3 crops of 224 at short side 224, HMDB51 2 x 3 crops of 286 at short side 286),
else the Kinetics one. Explicit arguments override it field by field
(`ModelConfig.clip_settings("test", ...)`); the result's `protocol` says which values came
from where. A crop size other than the model's runs the same weights at that size.

Averaging: the views' class probabilities are averaged, as the official configs do
(mmaction's `average_clips='prob'`: softmax of each view, then the mean). A model whose head
outputs logits (`classifier_activation=None`) gets the softmax here first.

Corrupt records are skipped and reported (by default): the result lists every video left
out (`skipped`: file and record position) and `num_videos` counts the videos scored.

Models: anything `keras_squeezetime.model_loading.load_model` opens (a preset, an official
`.pth`, a `.keras` file, a model folder, a `.weights.h5` with its `config.json`), or a
`keras.Model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
from absl import logging

from keras_squeezetime.labels import rank_classes

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
CONFUSION_FILE = "confusion_matrix.png"


def parse_views(text: str) -> tuple[int, int]:
    """`"10x3"` -> `(10, 3)`: clips per video x crops per clip (crops 1 or 3)."""
    try:
        clips, crops = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--views must look like CLIPSxCROPS, e.g. 10x3; got {text!r}.") from None
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"--views {text!r}: need clips >= 1 and crops 1 or 3.")
    return clips, crops


def evaluate_model(
    model,
    data: str | Sequence[str],
    views: tuple[int, int] | None = None,
    frames: int | None = None,
    frame_interval: int | None = None,
    image_size: int | None = None,
    short_side: int | None = None,
    batch_size: int = 1,
    labels: str | Sequence[str] | None = None,
    output: str | None = None,
    max_batches: int | None = None,
    skip_corrupt: bool = True,
) -> dict[str, Any]:
    """Multi-view evaluation of `model` on the TFRecords `data`.

    Args:
      model: a source `keras_squeezetime.model_loading.load_model` opens (preset, `.pth`,
        `.keras`, model folder, `.weights.h5`), or a `keras.Model` (the default protocol
        then comes from its input shape).
      data: TFRecord glob pattern(s).
      views: `(clips, crops)` per video; None takes the model's test protocol.
      frames, frame_interval, image_size, short_side: clip settings; None takes the test
        protocol's (image_size alone keeps the protocol's short-side ratio).
      batch_size: videos per batch (each holds `clips * crops` clips).
      labels: class names (built-in list, file or sequence); None uses the names in
        `config.json`, else class indices.
      output: folder for `metrics.json`, `predictions.npz`, `confusion_matrix.png`.
      max_batches: stop after this many batches (quick checks; nothing is then reported
        as skipped, as not every record was read).
      skip_corrupt: skip (and report) records that fail their CRC, parsing or the JPEG
        header check; False stops with the error.

    Returns:
      metrics: `top1`, `top5` (fractions), `mean_class_accuracy`, `per_class_accuracy`
      (name -> fraction, classes without videos left out), `num_videos` (scored),
      `num_skipped` and `skipped`, `views`, `sampling`, `protocol`, `clips_scored`,
      `input_shape` (what the model ran at), `averaging`, `model`.
    """
    import keras

    from keras_squeezetime.labels import resolve_class_names
    from keras_squeezetime.training.class_names import check_record_class_names
    from keras_squeezetime.training.shard_manifest import read_shard_index
    from keras_squeezetime.model_loading import config_of_model, load_model, resized_model
    from keras_squeezetime.training import pipeline

    if isinstance(model, str):
        name = model
        loaded = load_model(model, frames=frames)
        model, config, source = loaded.model, loaded.config, _protocol_source(loaded)
    else:
        name = model.name
        config, source = config_of_model(model), "defaults (a Keras model object)"
    explicit = {"frames": frames, "frame_interval": frame_interval, "image_size": image_size,
                "short_side": short_side}
    settings = config.clip_settings("test", **explicit)
    if settings.frames != model.input_shape[1]:
        raise ValueError(f"{name} takes {model.input_shape[1]} frames, not {settings.frames}.")
    if settings.image_size != model.input_shape[2]:
        model = resized_model(model, settings.image_size, name)
    clips, crops = config.test_views if views is None else tuple(views)
    sampling = dataclasses.asdict(settings)
    protocol = {
        "name": "test",
        "source": source,
        "views": {"clips": config.test_views[0], "crops": config.test_views[1]},
        "short_side": config.test_short_side,
        "image_size": config.test_image_size,
        "overridden": sorted([k for k, v in explicit.items() if v is not None]
                             + (["views"] if views is not None else [])),
    }
    num_classes = int(model.output_shape[-1])
    class_names = resolve_class_names(labels, num_classes, config.class_names, name)
    files = pipeline.list_record_files(data)
    index = read_shard_index(files)  # None without manifests beside every file
    if class_names is not None:
        # The manifests of prepared records name their classes (cheap to read): scores of
        # records numbered otherwise would be of mislabelled videos.
        check_record_class_names(
            class_names, index[1] if index else {},
            _names_source(labels, name),
            f"the records of {data}")
    averaging = "probabilities" if _outputs_probabilities(model) else "softmax of logits"

    dataset = pipeline.eval_dataset(
        files, batch_size, pipeline.PipelineConfig(**sampling), num_clips=clips,
        num_crops=crops, skip_corrupt=skip_corrupt, with_keys=True)
    probabilities, targets, keys = [], [], []
    clips_scored = 0
    complete = True
    batches = _named_read_errors(dataset, files, data, skip_corrupt)
    for step, (batch, batch_labels, batch_keys) in enumerate(batches):
        if max_batches is not None and step >= max_batches:
            complete = False
            break
        probabilities.append(predict_views(model, batch, clips * crops,
                                           from_logits=averaging != "probabilities"))
        targets.append(batch_labels.numpy())
        keys.append(batch_keys.numpy())
        clips_scored += int(np.prod(batch.shape[:-4]))
    skipped = _skipped_records(files, np.concatenate(keys) if keys else np.zeros((0, 2), int),
                               index[0] if index else {}) if complete else []
    for item in skipped:
        logging.warning("Skipped corrupt record %d of %s: not scored.", item["record"],
                        item["file"])
    if not targets:
        raise ValueError(f"No videos in {data}" + (
            f" could be read ({len(skipped)} corrupt records skipped)." if skipped else "."))
    probabilities = np.concatenate(probabilities)
    targets = np.concatenate(targets)
    metrics = classification_metrics(probabilities, targets, class_names)
    metrics.update(
        {"views": {"clips": clips, "crops": crops}, "sampling": sampling, "protocol": protocol,
         "clips_scored": clips_scored, "input_shape": [int(d) for d in model.input_shape[1:]],
         "averaging": averaging, "num_skipped": len(skipped), "skipped": skipped,
         "model": name, "keras_version": keras.__version__}
    )
    if output:
        write_outputs(output, metrics, probabilities, targets, class_names)
    return metrics


def predict_views(model, batch, num_views: int, from_logits: bool = False) -> np.ndarray:
    """Class probabilities `(B, classes)` averaged over the views of each video.

    `from_logits`: the model outputs logits; each view gets a softmax before the mean
    (mmaction's `average_clips='prob'`), never a mean of logits.
    """
    batch = np.asarray(batch)
    videos = batch.shape[0]
    flat = batch if num_views == 1 else batch.reshape((videos * num_views,) + batch.shape[2:])
    scores = np.asarray(model.predict_on_batch(flat), np.float64)
    if from_logits:
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
    return scores.reshape(videos, num_views, -1).mean(axis=1)


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Top-1/top-5, mean class accuracy, per-class accuracy and confusion matrix.

    Ties rank the lower class index first (stable sort), as `decode_predictions` does.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(np.int64)
    num_classes = probabilities.shape[1]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"Labels span {labels.min()}..{labels.max()} but the model has {num_classes} classes."
        )
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    ranking = rank_classes(probabilities)
    top1 = ranking[:, 0] == labels
    top5 = (ranking[:, : min(5, num_classes)] == labels[:, None]).any(axis=1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, ranking[:, 0]), 1)
    support = confusion.sum(axis=1)
    present = np.flatnonzero(support)
    per_class = {names[c]: float(confusion[c, c] / support[c]) for c in present}
    return {
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "mean_class_accuracy": float(np.mean(list(per_class.values()))),
        "per_class_accuracy": per_class,
        "num_videos": int(len(labels)),
        "num_classes": int(num_classes),
        "confusion_matrix": confusion.tolist(),
    }


def write_outputs(
    output: str, metrics: dict[str, Any], probabilities: np.ndarray, labels: np.ndarray,
    class_names: Sequence[str] | None,
) -> None:
    """Writes `metrics.json`, `predictions.npz` and `confusion_matrix.png` under `output`."""
    import tensorflow as tf

    tf.io.gfile.makedirs(output)
    with tf.io.gfile.GFile(f"{output}/{METRICS_FILE}", "w") as handle:
        handle.write(json.dumps(metrics, indent=2, ensure_ascii=False))
    np.savez(f"{output}/{PREDICTIONS_FILE}", probabilities=probabilities, labels=labels)
    plot_confusion(np.asarray(metrics["confusion_matrix"]), class_names,
                   f"{output}/{CONFUSION_FILE}")


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str] | None, path: str) -> None:
    """Row-normalised confusion matrix as a PNG (class names on the axes up to 60 classes)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    rows = confusion.sum(axis=1, keepdims=True)
    normalised = confusion / np.maximum(rows, 1)
    size = min(4 + 0.25 * len(confusion), 40)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if class_names and len(class_names) <= 60:
        ticks = np.arange(len(class_names))
        axes.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        axes.set_yticks(ticks, class_names, fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _protocol_source(loaded) -> str:
    """Where the protocol of a loaded model comes from, for the report."""
    if loaded.kind in ("keras", "folder", "weights"):
        from keras_squeezetime.model_config import config_path, read_model_config

        if read_model_config(loaded.source) is not None:
            return config_path(loaded.source)
    return f"defaults (no config.json for this {loaded.kind})"


def _outputs_probabilities(model) -> bool:
    """Whether the model's output is a softmax (else it is treated as logits)."""
    from keras_squeezetime.output_activation import output_activation

    activation = output_activation(model)
    if activation is None:
        raise ValueError(
            f"{model.name}: cannot tell whether its output layer {model.layers[-1].name!r} "
            "gives probabilities or logits (no activation attribute); end it with a softmax.")
    return activation == "softmax"


def _skipped_records(files: Sequence[str], keys: np.ndarray,
                     manifest_counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every record of `files` whose `(file index, position)` is not among `keys`.

    A file's records are those its manifest counts (`manifest_counts`), or that can be
    read: after a damaged record the reader finds no more, which only the manifest knows of.
    """
    from keras_squeezetime.training.records import count_records

    seen: dict[int, set[int]] = {}
    for file_index, position in keys.tolist():
        seen.setdefault(int(file_index), set()).add(int(position))
    skipped = []
    for file_index, path in enumerate(files):
        scored = seen.get(file_index, set())
        total = max(count_records(path), manifest_counts.get(path, 0))
        skipped += [{"file": path, "record": position}
                    for position in range(total) if position not in scored]
    return skipped


def _named_read_errors(dataset, files: Sequence[str], data, skip_corrupt: bool):
    """`dataset`'s batches; a record that cannot be read raises a ValueError naming it
    (tf.data's error names neither file nor record)."""
    import tensorflow as tf

    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(_unreadable_record_message(files, data, error, skip_corrupt)
                             ) from None
        yield batch


def _unreadable_record_message(files: Sequence[str], data, error: Exception,
                               skip_corrupt: bool) -> str:
    """One line naming the file and record that stopped the evaluation, and why."""
    from keras_squeezetime.training.pipeline import corrupt_record_message
    from keras_squeezetime.training.tf_errors import tf_error_text

    found = None if skip_corrupt else corrupt_record_message(files)
    if found is not None:
        return (f"{found}; --noskip-corrupt stops at the first corrupt record (by default "
                "corrupt records are skipped and reported).")
    # Sound headers around a broken JPEG body: decoding fails, skipped or not.
    patterns = data if isinstance(data, str) else ", ".join(data)
    return f"a record of {patterns} cannot be decoded: {tf_error_text(error)}."


def _names_source(labels, model_name: str) -> str:
    """Where evaluation's class names come from, for messages."""
    if labels is None:
        return f"the model ({model_name})"
    if isinstance(labels, (str, os.PathLike)):
        return f"--labels {os.fspath(labels)}"
    return "the labels given"
