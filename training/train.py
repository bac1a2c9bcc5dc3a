"""Training library behind `squeezetime-train`: `train(TrainConfig) -> metrics`.

One run writes to `output/`:

- `config.json`: every setting of `TrainConfig`, the resolved recipe (learning rate after
  linear scaling, schedule, decay, clipping, initialisation) and the clip geometry the
  exporter and predictor read (`frames`, `frame_interval`, `image_size`, `short_side`,
  `num_classes`, `width_multiplier`, `class_names`);
- `history.csv` (one row per epoch), `logs/` (TensorBoard), `checkpoints/best.keras` and
  `checkpoints/last.keras`, `backup/` (`BackupAndRestore`, removed when the run finishes);
- at the end `model.keras` (the last epoch's model, uncompiled), `model.weights.h5` and
  `metrics.json`.

A killed run started again with the same `output` resumes after its last finished epoch:
weights, optimizer state (momentum, step count, hence the schedule) and the epoch counter
come back from `backup/`, and `history.csv` is cut to the epochs before the resumed one.

Under `multi_worker`, every worker runs this same function; only the chief writes the
outputs, the others keep a private backup (`backup/worker-<i>`) so that every worker can
resume.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from typing import Any

from absl import logging

import keras
import tensorflow as tf

from keras_squeezetime import SqueezeTime, load_labels, presets
from keras_squeezetime.training import pipeline, records, strategy as strategy_lib
from keras_squeezetime.training.optimizer import TorchSGD
from keras_squeezetime.training.recipes import Recipe, get_recipe
from keras_squeezetime.training.schedules import MultiStepDecay, WarmupCosineDecay

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"
# Keras' BackupAndRestore metadata file (epoch to resume from).
_BACKUP_METADATA = "training_metadata.json"
# Settings a resumed run must share with the run it resumes.
_RESUME_KEYS = (
    "config", "frames", "frame_interval", "image_size", "num_classes", "width_multiplier",
    "epochs", "batch_size", "learning_rate", "schedule", "steps_per_epoch",
)


class SetupError(ValueError):
    """Settings or inputs that make the run impossible (the CLI reports these without a trace)."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of one training run; `None` fields take the recipe's (`config`) value.

    Attributes:
      train_data: TFRecord glob pattern(s), comma-separated, local or `gs://`.
      output: run folder (local or `gs://`).
      config: recipe: "kinetics400", "kinetics600", "hmdb51" or "custom".
      val_data: validation TFRecord pattern(s); None trains without validation.
      num_classes: classes (required for "custom").
      labels: class names: built-in list name or text file (one per line).
      frames, frame_interval, image_size, short_side: clip sampling and size.
      width_multiplier: channel width factor of the model.
      epochs: training epochs; warm-up and milestones stretch with it (`Recipe.scaled_to`).
      batch_size: global batch (all replicas and workers together).
      lr: learning rate per 64 clips (scaled linearly to `batch_size`).
      warmup_epochs: warm-up length (cosine schedule).
      weight_decay: coupled L2 decay; clip_norm: global gradient-norm clip (0: none).
      backbone_lr_multiplier: learning-rate factor of all but the head.
      dropout_rate: dropout before the classifier.
      hflip: random horizontal flips (off for direction-dependent classes).
      augment: multi-scale crop, colour jitter and random erasing (off: centre crop only).
      shuffle_frames: shuffle the frames of every clip (train and val): the control run
        that shows what the model learns without temporal order.
      init_weights: preset or checkpoint path; "none" for random; None for the recipe's.
      steps_per_epoch: None counts the training records (manifest.json when present).
      validation_steps: None evaluates the whole validation set.
      strategy: "default", "mirrored", "multi_worker" or "tpu"; tpu: TPU name/address.
      mixed_precision: bfloat16 compute (float16 on GPUs); variables stay float32.
      jit_compile: compile the train step with XLA.
      seed: seed of weights, data order and augmentation; None draws one.
      deterministic: reproducible data order (slower input pipeline).
      data_threads: private tf.data threads (None: TensorFlow's pools).
    """

    train_data: str
    output: str
    config: str = "custom"
    val_data: str | None = None
    num_classes: int | None = None
    labels: str | None = None
    frames: int | None = None
    frame_interval: int | None = None
    image_size: int | None = None
    short_side: int | None = None
    width_multiplier: float = 1.0
    epochs: int | None = None
    batch_size: int = 8
    lr: float | None = None
    warmup_epochs: float | None = None
    weight_decay: float | None = None
    clip_norm: float | None = None
    backbone_lr_multiplier: float | None = None
    dropout_rate: float = 0.5
    hflip: bool = True
    augment: bool = True
    shuffle_frames: bool = False
    init_weights: str | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    strategy: str = "default"
    tpu: str = ""
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int | None = None
    deterministic: bool = False
    data_threads: int | None = None


def resolve_recipe(config: TrainConfig) -> Recipe:
    """The recipe of `config.config` with the run's overrides applied and epochs scaled."""
    recipe = get_recipe(config.config)
    if config.epochs is not None:
        if config.epochs < 1:
            raise SetupError(f"epochs must be >= 1; got {config.epochs}.")
        recipe = recipe.scaled_to(config.epochs)
    overrides = {
        "num_classes": config.num_classes,
        "frames": config.frames,
        "frame_interval": config.frame_interval,
        "image_size": config.image_size,
        "short_side": config.short_side,
        "lr_per_64": config.lr,
        "warmup_epochs": config.warmup_epochs,
        "weight_decay": config.weight_decay,
        "clip_norm": config.clip_norm,
        "backbone_lr_multiplier": config.backbone_lr_multiplier,
    }
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if config.init_weights is not None:
        init = None if config.init_weights.lower() == "none" else config.init_weights
        recipe = dataclasses.replace(recipe, init_weights=init)
    if config.labels is not None:
        recipe = dataclasses.replace(recipe, labels=config.labels or None)  # "": no names
    _check_recipe(recipe, config)
    return recipe


def train(config: TrainConfig) -> dict[str, Any]:
    """Trains (or resumes) one run and returns its final metrics (also in `metrics.json`).

    Raises:
      SetupError: inconsistent settings, or `output` holds a different run to resume.
      FileNotFoundError: a data pattern matches no file.
    """
    recipe = resolve_recipe(config)
    train_files = pipeline.list_record_files(_patterns(config.train_data))
    val_files = pipeline.list_record_files(_patterns(config.val_data)) if config.val_data else []
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy(_mixed_policy(config.strategy))
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    strategy = strategy_lib.make_strategy(config.strategy, config.tpu)
    chief = strategy_lib.is_chief(strategy)

    num_train, label_texts = count_records(train_files)
    steps = config.steps_per_epoch or num_train // config.batch_size
    if steps < 1:
        raise SetupError(
            f"{num_train} training clips make no full batch of {config.batch_size}; "
            "lower --batch-size or add data."
        )
    class_names = _class_names(recipe, label_texts)
    settings = _settings(config, recipe, strategy, steps, num_train, class_names)
    output = config.output.rstrip("/")
    tf.io.gfile.makedirs(output)
    backup_dir = f"{output}/backup" if chief else (
        f"{output}/backup/worker-{strategy.cluster_resolver.task_id}"
    )
    resume_epoch = _resume_epoch(backup_dir)
    if resume_epoch is None and tf.io.gfile.exists(f"{output}/{MODEL_FILE}"):
        raise SetupError(f"{output} holds a finished run ({MODEL_FILE}); use another --output.")
    if resume_epoch is not None:
        _check_resumable(output, settings)
        logging.info("Resuming %s after epoch %d.", output, resume_epoch)
    if chief:
        _write_json(f"{output}/{CONFIG_FILE}", settings)
        _trim_history(f"{output}/{HISTORY_FILE}", resume_epoch or 0)

    data_config = _pipeline_config(config, recipe)
    train_data = train_dataset(train_files, config.batch_size, data_config, config.shuffle_frames)
    val_data, validation_steps = None, config.validation_steps
    if val_files:
        multi_worker = strategy_lib.num_workers(strategy) > 1
        full_batches = strategy.num_replicas_in_sync > 1
        num_val = count_records(val_files)[0]
        if full_batches and num_val < config.batch_size:
            raise SetupError(
                f"Validation under {config.strategy} needs at least one full batch: "
                f"{num_val} clips < --batch-size {config.batch_size}."
            )
        if validation_steps is None and not multi_worker:
            # A known length spares Keras' "ran out of data" warning after each validation.
            rounding = math.floor if full_batches else math.ceil
            validation_steps = rounding(num_val / config.batch_size)
        val_data = validation_dataset(
            val_files, config.batch_size, data_config, config.shuffle_frames,
            multi_worker=multi_worker, full_batches_only=full_batches,
        )

    with strategy.scope():
        model = build_model(recipe, config)
        model.compile(
            optimizer=make_optimizer(recipe, config.batch_size, steps),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                keras.metrics.SparseTopKCategoricalAccuracy(
                    k=min(5, recipe.num_classes), name="top5"
                ),
            ],
            jit_compile=config.jit_compile,
        )

    if config.strategy != "default":
        if strategy_lib.num_workers(strategy) > 1:
            strategy_lib.patch_keras_multi_worker_reduction()
        _build_from_shapes(model, strategy, recipe, config.batch_size)
    callbacks = _callbacks(output, backup_dir, chief, bool(val_files))
    started = time.monotonic()
    history = model.fit(
        train_data,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        validation_data=val_data,
        validation_steps=validation_steps,
        callbacks=callbacks,
        verbose=2 if chief else 0,
    )
    seconds = time.monotonic() - started
    metrics = _final_metrics(history, output, resume_epoch, seconds, steps, config.batch_size)
    if chief:
        # Saved uncompiled: loading then needs only the model's layers, not this package's
        # optimizer and schedules (checkpoints/*.keras keep the training state).
        keras.Model(model.inputs, model.outputs, name=model.name).save(f"{output}/{MODEL_FILE}")
        model.save_weights(f"{output}/{WEIGHTS_FILE}")
        _write_json(f"{output}/{METRICS_FILE}", metrics)
    return metrics


def build_model(recipe: Recipe, config: TrainConfig) -> keras.Model:
    """The SqueezeTime model of the recipe, initialised from `recipe.init_weights`."""
    model = SqueezeTime(
        input_shape=(recipe.frames, recipe.image_size, recipe.image_size, 3),
        num_classes=recipe.num_classes,
        width_multiplier=config.width_multiplier,
        dropout_rate=config.dropout_rate,
    )
    if recipe.init_weights:
        initialise_weights(model, recipe.init_weights)
    return model


def initialise_weights(model: keras.Model, source: str) -> None:
    """Loads a preset, official `.pth`, `.keras` or `.weights.h5` into `model`.

    When the checkpoint's classifier has another number of classes, the backbone is loaded
    and the head keeps its fresh initialisation (fine-tuning, e.g. K400 -> HMDB51).
    Our `.weights.h5` files need the `config.json` saved beside them for a different head.
    """
    from keras_squeezetime.weights.loading import load_weights

    if source in presets.PRESETS or source.endswith((".pth", ".pt")):
        try:
            load_weights(model, source)
        except (ValueError, KeyError) as error:
            raise SetupError(f"--init-weights {source}: {error}") from error
        return
    if not tf.io.gfile.exists(source):
        raise FileNotFoundError(
            f"--init-weights {source!r} is neither a preset {sorted(presets.PRESETS)} "
            "nor an existing file."
        )
    if source.endswith(".keras"):
        saved = keras.saving.load_model(source, compile=False)
    elif source.endswith(".weights.h5"):
        saved = _model_beside(source, model)
        saved.load_weights(source)
    else:
        raise SetupError(
            f"--init-weights {source!r}: expected a preset, '.pth', '.keras' or '.weights.h5'."
        )
    copied, skipped = _copy_matching(saved, model)
    if skipped:
        logging.warning(
            "Initialised from %s except %d variables of another shape (%s): the head is new.",
            source, len(skipped), ", ".join(skipped[:4]),
        )
    logging.info("Copied %d variables from %s.", copied, source)


def make_optimizer(recipe: Recipe, global_batch: int, steps_per_epoch: int) -> TorchSGD:
    """`TorchSGD` with the recipe's schedule, linearly scaled to `global_batch`."""
    multipliers = {}
    if recipe.backbone_lr_multiplier != 1.0:
        multipliers = {"": recipe.backbone_lr_multiplier, "head/": 1.0}
    return TorchSGD(
        learning_rate=make_schedule(recipe, global_batch, steps_per_epoch),
        momentum=recipe.momentum,
        l2_decay=recipe.weight_decay,
        lr_multipliers=multipliers,
        global_clipnorm=recipe.clip_norm or None,
    )


def make_schedule(
    recipe: Recipe, global_batch: int, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The recipe's learning-rate schedule in optimizer steps."""
    peak = recipe.learning_rate(global_batch)
    if recipe.schedule == "cosine":
        return WarmupCosineDecay(
            peak, steps_per_epoch, recipe.epochs, recipe.warmup_epochs,
            recipe.warmup_factor, final_learning_rate=recipe.final_lr,
        )
    if recipe.schedule == "multistep":
        return MultiStepDecay(peak, steps_per_epoch, recipe.milestones, recipe.gamma)
    raise SetupError(f"Unknown schedule {recipe.schedule!r}.")


def train_dataset(
    files: list[str],
    global_batch: int,
    data_config: pipeline.PipelineConfig,
    shuffle_frames: bool = False,
) -> tf.data.Dataset:
    """Endless augmented training batches (epochs are `steps_per_epoch` long)."""
    data = pipeline.train_dataset(files, global_batch, data_config, repeat=True)
    return shuffle_clip_frames(data, data_config.seed) if shuffle_frames else data


def validation_dataset(
    files: list[str],
    global_batch: int,
    data_config: pipeline.PipelineConfig,
    shuffle_frames: bool = False,
    multi_worker: bool = False,
    full_batches_only: bool = False,
) -> tf.data.Dataset:
    """One centre view per video, for monitoring during training.

    Across workers the records are split (not the files): a validation set often has fewer
    files than there are workers. With several replicas, a short last batch is dropped:
    splitting it can leave a replica an empty batch, which Keras' batch norm rejects. Exact
    numbers on every video come from `squeezetime-evaluate`.
    """
    if multi_worker:
        data_config = dataclasses.replace(
            data_config, auto_shard_policy=tf.data.experimental.AutoShardPolicy.DATA
        )
    data = pipeline.eval_dataset(files, global_batch, data_config)
    if full_batches_only:
        data = data.filter(lambda clips, labels: tf.shape(labels)[0] == global_batch)
    # Fixed seed: the control's validation clips are the same shuffles every epoch.
    return shuffle_clip_frames(data, 1234) if shuffle_frames else data


def shuffle_clip_frames(dataset: tf.data.Dataset, seed: int | None = None) -> tf.data.Dataset:
    """Permutes the frames of every clip `(B, T, H, W, 3)` independently.

    Each clip keeps exactly its frames (every single-frame and bag-of-frames cue) and
    loses their order: the control for what a model learns from time.
    """
    base = tf.constant([0 if seed is None else seed, 0x5F], tf.int64)

    @tf.autograph.experimental.do_not_convert  # plain tensor ops: nothing to convert
    def shuffle(index, batch):
        clips, labels = batch
        shape = tf.shape(clips)
        noise = tf.random.stateless_uniform(
            shape[:2], tf.random.experimental.stateless_fold_in(base, index)
        )
        order = tf.argsort(noise, axis=1)
        return tf.gather(clips, order, axis=1, batch_dims=1), labels

    return dataset.enumerate().map(shuffle, num_parallel_calls=tf.data.AUTOTUNE)


def count_records(files: list[str]) -> tuple[int, dict[int, str]]:
    """Records in `files` and the class names found, `(count, {index: text})`.

    Uses the record counts of `prepare_dataset`'s `manifest.json` beside the files when it
    lists them all (no class names then); otherwise reads the files once.
    """
    counts = _manifest_counts(files)
    if counts is not None:
        return counts, {}
    count, texts = 0, {}
    features = {
        records.LABEL_INDEX_KEY: records.CONTEXT_FEATURES[records.LABEL_INDEX_KEY],
        records.LABEL_TEXT_KEY: records.CONTEXT_FEATURES[records.LABEL_TEXT_KEY],
    }
    for serialized in tf.data.TFRecordDataset(files).batch(256):
        context, _, _ = tf.io.parse_sequence_example(serialized, context_features=features)
        count += int(tf.shape(serialized)[0])
        for index, text in zip(context[records.LABEL_INDEX_KEY].numpy(),
                               context[records.LABEL_TEXT_KEY].numpy()):
            if text:
                texts.setdefault(int(index), text.decode("utf-8"))
    return count, texts


# --- internals ------------------------------------------------------------------------


def _patterns(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _check_recipe(recipe: Recipe, config: TrainConfig) -> None:
    if recipe.num_classes is None or recipe.num_classes < 1:
        raise SetupError(f"--config {recipe.name} needs --num-classes (>= 1).")
    if recipe.image_size % 16:
        raise SetupError(f"--image-size must be a multiple of 16; got {recipe.image_size}.")
    if recipe.short_side < recipe.image_size:
        raise SetupError(
            f"--short-side ({recipe.short_side}) must be >= --image-size ({recipe.image_size})."
        )
    if config.batch_size < 1:
        raise SetupError(f"--batch-size must be >= 1; got {config.batch_size}.")
    if config.width_multiplier <= 0:
        raise SetupError(f"--width-multiplier must be > 0; got {config.width_multiplier}.")
    if recipe.frames < 1 or recipe.frame_interval < 1:
        raise SetupError("--frames and --frame-interval must be >= 1.")
    if not config.train_data or not _patterns(config.train_data):
        raise SetupError("--train-data is required.")


def _mixed_policy(strategy: str) -> str:
    # float16 needs loss scaling and pays off only on GPUs; TPUs and CPUs compute bfloat16.
    return "mixed_float16" if tf.config.list_physical_devices("GPU") and strategy != "tpu" \
        else "mixed_bfloat16"


def _pipeline_config(config: TrainConfig, recipe: Recipe) -> pipeline.PipelineConfig:
    return pipeline.PipelineConfig(
        frames=recipe.frames,
        frame_interval=recipe.frame_interval,
        image_size=recipe.image_size,
        short_side=recipe.short_side,
        hflip=config.hflip,
        multiscale_crop=config.augment,
        color_jitter=config.augment,
        random_erasing=0.25 if config.augment else 0.0,
        deterministic=config.deterministic,
        seed=config.seed,
        threads=config.data_threads,
    )


def _class_names(recipe: Recipe, label_texts: dict[int, str]) -> list[str] | None:
    if recipe.labels is not None:
        names = load_labels(recipe.labels)
        if len(names) != recipe.num_classes:
            raise SetupError(
                f"--labels {recipe.labels} has {len(names)} names for {recipe.num_classes} classes."
            )
        return names
    if len(label_texts) == recipe.num_classes and set(label_texts) == set(range(recipe.num_classes)):
        return [label_texts[i] for i in range(recipe.num_classes)]
    return None


def _settings(config, recipe, strategy, steps, num_train, class_names) -> dict[str, Any]:
    """Everything `config.json` records: flags, resolved recipe, contract keys."""
    settings = dataclasses.asdict(config)
    resolved = recipe.to_dict()
    resolved.pop("name")
    settings.update(resolved)
    settings.update(
        {
            "config": recipe.name,
            "epochs": recipe.epochs,
            "learning_rate": recipe.learning_rate(config.batch_size),
            "learning_rate_rule": f"lr_per_64 * batch_size / 64 = "
                                  f"{recipe.lr_per_64} * {config.batch_size} / 64",
            "optimizer": "SGD (PyTorch form: coupled L2 weight decay, momentum buffer)",
            "steps_per_epoch": steps,
            "num_train_records": num_train,
            "class_names": class_names,
            "num_replicas": strategy.num_replicas_in_sync,
            "num_workers": strategy_lib.num_workers(strategy),
            "tf_config": strategy_lib.task_summary(),
            "dtype_policy": keras.mixed_precision.dtype_policy().name,
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
        }
    )
    return json.loads(json.dumps(settings))  # tuples -> lists, as they come back from disk


def _resume_epoch(backup_dir: str) -> int | None:
    path = f"{backup_dir}/{_BACKUP_METADATA}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return int(json.load(handle)["epoch"])


def _check_resumable(output: str, settings: dict[str, Any]) -> None:
    path = f"{output}/{CONFIG_FILE}"
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as handle:
        previous = json.load(handle)
    changed = [k for k in _RESUME_KEYS if previous.get(k) != settings.get(k)]
    if changed:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise SetupError(
            f"{output} holds an unfinished run with other settings ({details}); "
            "use another --output, or delete its backup/ folder to start over."
        )


def _trim_history(path: str, first_epoch: int) -> None:
    """Keeps only rows of epochs before `first_epoch` (rows of a killed epoch would repeat)."""
    if not tf.io.gfile.exists(path):
        return
    if first_epoch == 0:
        tf.io.gfile.remove(path)
        return
    with tf.io.gfile.GFile(path) as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) < first_epoch]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(kept)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text.getvalue())


class _LogLearningRate(keras.callbacks.Callback):
    """Adds the learning rate in effect at the end of each epoch to the logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate
            ))


class _EpochSummaries(keras.callbacks.Callback):
    """TensorBoard scalars per epoch (`logs/train`, `logs/validation`, tags `epoch_<metric>`).

    The layout of `keras.callbacks.TensorBoard`, written with core TF ops: that callback
    needs the `tensorboard` package at run time, which training does not otherwise need.
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._writers: dict[str, Any] = {}
        from tensorflow.core.framework import summary_pb2

        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if split not in self._writers:
                self._writers[split] = tf.summary.create_file_writer(f"{self.log_dir}/{split}")
            with self._writers[split].as_default():
                tf.summary.write(
                    f"epoch_{name}", tf.constant(float(value)), step=epoch, metadata=self._metadata
                )
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


def _callbacks(output: str, backup_dir: str, chief: bool, has_val: bool) -> list:
    # Order matters: the CSV row is written before the backup, so a kill in between replays
    # that epoch and `_trim_history` drops its stale row.
    callbacks: list[keras.callbacks.Callback] = [_LogLearningRate()]
    if chief:
        monitor = "val_accuracy" if has_val else "accuracy"
        tf.io.gfile.makedirs(f"{output}/checkpoints")
        callbacks += [
            keras.callbacks.CSVLogger(f"{output}/{HISTORY_FILE}", append=True),
            _EpochSummaries(f"{output}/logs"),
            keras.callbacks.ModelCheckpoint(
                f"{output}/checkpoints/best.keras", monitor=monitor, mode="max",
                save_best_only=True,
            ),
            keras.callbacks.ModelCheckpoint(f"{output}/checkpoints/last.keras"),
        ]
    callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=backup_dir))
    return callbacks


def _final_metrics(history, output, resume_epoch, seconds, steps, batch) -> dict[str, Any]:
    logs = {k: v[-1] for k, v in history.history.items() if v}
    epochs_run = len(history.epoch)
    metrics: dict[str, Any] = {k: float(v) for k, v in logs.items()}
    metrics.update(
        {
            "epochs_completed": (history.epoch[-1] + 1) if history.epoch else resume_epoch,
            "resumed_from_epoch": resume_epoch,
            "epochs_this_run": epochs_run,
            "train_seconds_this_run": round(seconds, 2),
            "train_clips_per_second": round(epochs_run * steps * batch / seconds, 2)
            if epochs_run else None,
        }
    )
    if "val_accuracy" in history.history:
        values = history.history["val_accuracy"]
        best = max(range(len(values)), key=values.__getitem__)
        metrics["best_val_accuracy_this_run"] = float(values[best])
        metrics["best_epoch_this_run"] = history.epoch[best] + 1
    return metrics


def _manifest_counts(files: list[str]) -> int | None:
    by_dir: dict[str, set[str]] = {}
    for path in files:
        folder, name = path.rsplit("/", 1) if "/" in path else (".", path)
        by_dir.setdefault(folder, set()).add(name)
    total = 0
    for folder, names in by_dir.items():
        manifest = f"{folder}/manifest.json"
        if not tf.io.gfile.exists(manifest):
            return None
        with tf.io.gfile.GFile(manifest) as handle:
            shards = {s["name"]: s["records"] for s in json.load(handle).get("shards", [])}
        if not names <= set(shards):
            return None
        total += sum(shards[name] for name in names)
    return total


def _model_beside(weights_path: str, like: keras.Model) -> keras.Model:
    """A model shaped like the one that saved `weights_path` (from its `config.json`)."""
    folder = os.path.dirname(weights_path)
    path = f"{folder}/{CONFIG_FILE}" if folder else CONFIG_FILE
    if not tf.io.gfile.exists(path):
        return like  # no record of another shape: load straight into the model
    with tf.io.gfile.GFile(path) as handle:
        saved = json.load(handle)
    return SqueezeTime(
        input_shape=(saved["frames"], saved["image_size"], saved["image_size"], 3),
        num_classes=saved["num_classes"],
        width_multiplier=saved["width_multiplier"],
    )


def _copy_matching(source: keras.Model, target: keras.Model) -> tuple[int, list[str]]:
    """Copies variables by path (model name aside); returns (copied, skipped paths)."""
    if source is target:
        return len(target.weights), []
    saved = {v.path: v for v in source.weights}
    skipped, copied = [], 0
    for variable in target.weights:
        match = saved.get(variable.path)
        if match is None:
            raise SetupError(
                f"The checkpoint has no variable {variable.path}: it is not a SqueezeTime "
                "model of this width."
            )
        if tuple(match.shape) != tuple(variable.shape):
            if not variable.path.startswith("head/"):
                raise SetupError(
                    f"{variable.path}: checkpoint {tuple(match.shape)}, model "
                    f"{tuple(variable.shape)}; only the head may differ (check "
                    "--width-multiplier)."
                )
            skipped.append(variable.path)
            continue
        variable.assign(match)
        copied += 1
    return copied, skipped


def _build_from_shapes(model, strategy, recipe: Recipe, batch: int) -> None:
    """Builds model, optimizer, loss and metrics state from input shapes before `fit`.

    Under a strategy, Keras 3.15's `fit` builds this state from its first distributed batch,
    which it first averages eagerly over replicas with `strategy.reduce`. That fails under
    `MultiWorkerMirroredStrategy` (`ValueError: Attempt to convert a value (PerReplica ...)`)
    and under `MirroredStrategy` when a short last batch leaves a replica empty (`AddN` of
    `[8, ...]` and `[0, ...]`). Building from shapes does the same work without the
    reduction, and `fit` is told it is done.
    """
    size = recipe.image_size
    specs = (
        tf.TensorSpec((batch, recipe.frames, size, size, 3), tf.float32),
        tf.TensorSpec((batch,), tf.int32),
    )
    with strategy.scope():
        model._symbolic_build(data_batch=specs)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _write_json(path: str, value: dict[str, Any]) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(value, indent=2, ensure_ascii=False))
