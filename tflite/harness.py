"""`squeezetime-eval-tflite`'s work: accuracy, parity, latency, size, memory and delegation.

`evaluate(paths, data, ...)` samples clips the way the files' metadata says, runs every
file through the LiteRT interpreter and through the `CompiledModel` API (CPU), and
returns one report dict per file (`report.write_reports` writes them as JSON, Markdown
and a plot). Prepared records whose manifest numbers the classes otherwise than a file
names them are refused first (`check_data_class_names`). Keys of a report:

- `variant`, `model`, `quantization`, `input_type`, `input_layout`, `threads`,
  `size_bytes`, `ops`;
- `latency_ms` (`median`, `p90`, `runs`; all files timed round-robin) and
  `peak_memory_bytes` (a bare process, see `measurement`);
- `xnnpack`: `{"partitions", "ops_outside"}` (how XNNPACK took the graph);
- `clips`, `top1`, `top5`, and with a reference Keras model `reference_top1`,
  `agreement_top1`, `logit_cosine`, `logit_cosine_min`, `logit_max_abs_error`,
  `logit_max_rel_error` (`report.quality_metrics`);
- `compiled_model`: `{"max_abs_diff", "clips"}`: the CompiledModel API's outputs against
  the interpreter's;
- for `float16-compute` files, `fp16_arithmetic`: the quality metrics with XNNPACK forced
  to compute in fp16, what a phone with fp16 arithmetic does with the file (unforced,
  desktop XNNPACK computes such a file in fp32), and `fp16_accumulation`: whether sums
  accumulated in fp16 as on a phone, or in fp32 (emulation on a CPU without fp16
  arithmetic, see `compiled_model`);
- with `gpu=True`, `gpu`: `gpu_compatibility.gpu_accelerator_check`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

# Clips the CompiledModel API is compared on (each is one more run of every file).
COMPILED_MODEL_CLIPS = 8


def load_reference(path: str, clip_shape: Sequence[int]):
    """The Keras model at `path` (any kind `load_model` takes), built for clips `(T, S, S, 3)`."""
    from keras_squeezetime.model_loading import load_model

    return load_model(path, image_size=clip_shape[1], frames=clip_shape[0]).model


def check_reference_classes(reference, reference_path: str, models: Sequence) -> None:
    """Raises ValueError naming both class counts when a file's differ from the reference's."""
    from keras_squeezetime.architecture import HEAD

    classes = reference.get_layer(HEAD).num_classes
    for model in models:
        if model.num_classes != classes:
            raise ValueError(
                f"The reference {reference_path} has {classes} classes but {model.path} has "
                f"{model.num_classes}; compare a file with the Keras model it was exported from.")


def check_data_class_names(model, data: str) -> None:
    """Raises ValueError when the prepared records of `data` number their classes otherwise
    than `model` (a `LiteRTModel`) names them, as `squeezetime-evaluate` refuses them: the
    scores would be of mislabelled videos.

    Unchecked, as there: a model without class names, records without a manifest beside
    every file (see `shard_manifest.read_shard_index`), and video lists (no class names).
    """
    from keras_squeezetime.tflite.calibration import is_video_list
    from keras_squeezetime.training.class_names import check_record_class_names
    from keras_squeezetime.training.pipeline import list_record_files
    from keras_squeezetime.training.shard_manifest import read_shard_index

    names = model.model_config().class_names
    if names is None or is_video_list(data):
        return
    index = read_shard_index(list_record_files(data))
    if index is not None:
        check_record_class_names(names, index[1], f"the model {model.path}",
                                 f"the records of {data}")


def reference_logits(path_or_model, clips: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Logits of a Keras model (or the one at a path, any kind `load_model` takes) for pixel
    clips `(N, T, S, S, 3)`."""
    import keras

    from keras_squeezetime.architecture import HEAD

    model = (load_reference(path_or_model, clips.shape[1:])
             if isinstance(path_or_model, (str, os.PathLike)) else path_or_model)
    head = model.get_layer(HEAD)
    activation, head.activation = head.activation, keras.activations.linear
    try:
        return np.concatenate([np.asarray(model(clips[i:i + batch_size], training=False))
                               for i in range(0, len(clips), batch_size)])
    finally:
        head.activation = activation


def clip_settings(model, frame_interval: int | None = None, short_side: int | None = None):
    """The validation `ClipSettings` of `model` (a `LiteRTModel`, see its `model_config`),
    the arguments overriding its frame interval and short side."""
    return model.model_config().clip_settings(
        "val", frame_interval=frame_interval, short_side=short_side)


def evaluate(
    paths: Sequence[str],
    data: str,
    reference: str | None = None,
    threads: int = 2,
    limit: int | None = None,
    runs: int = 30,
    warmup: int = 5,
    memory: bool = True,
    frame_interval: int | None = None,
    short_side: int | None = None,
    gpu: bool = False,
) -> list[dict]:
    """One report dict per `.tflite` in `paths` (keys in the module doc).

    Args:
      paths: variants of one model (same frames and size; any layout and dtype).
      data: clips to evaluate on: TFRecord glob pattern or video list (`.txt`).
      reference: a Keras model (`.keras` or model folder) to compare with.
      threads: interpreter threads.
      limit: evaluate at most this many clips.
      runs, warmup: timed and untimed runs per file.
      memory: measure peak memory (one subprocess per file).
      frame_interval, short_side: override the sampling in the files' metadata.
      gpu: also compile and run each file on LiteRT's GPU accelerator.

    Raises:
      ValueError: the files take different clips, their class count is not the
        reference's, the records' class names are not theirs, or a file/data problem
        (named).
      FileNotFoundError: a file or the data is missing.
    """
    from keras_squeezetime.tflite import calibration, report
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner, cpu_has_fp16_arithmetic
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.measurement import measure_latency, peak_memory_bytes

    models = [LiteRTModel(path, threads) for path in paths]
    shapes = {m.clip_shape for m in models}
    if len(shapes) != 1:
        raise ValueError(f"The models take different clips {sorted(shapes)}; compare variants "
                         "of one model only.")
    for model in models:  # cheap (manifests only): before the reference and the clips
        check_data_class_names(model, data)
    # The reference is checked before any clip is read or run.
    reference_model = load_reference(reference, models[0].clip_shape) if reference else None
    if reference_model is not None:
        check_reference_classes(reference_model, reference, models)
    clips, labels = calibration.load_clips(
        data, clip_settings(models[0], frame_interval, short_side), limit)
    models[0].check_clip_shape(clips.shape[1:])
    ref = reference_logits(reference_model, clips) if reference_model is not None else None
    latencies = measure_latency(models, clips[0], runs, warmup)
    reports = []
    for model, latency in zip(models, latencies):
        scores = model.scores(clips)
        entry = {
            "variant": os.path.splitext(os.path.basename(model.path))[0],
            "model": model.path,
            "quantization": model.config.get("quantization"),
            "input_type": str(model.input_dtype),
            "input_layout": model.input_layout,
            "threads": threads,
            "size_bytes": os.path.getsize(model.path),
            "latency_ms": latency,
            "ops": model.op_counts(),
            "xnnpack": model.delegation(),
            **report.quality_metrics(scores, labels, ref),
            "compiled_model": compiled_model_difference(model, clips[:COMPILED_MODEL_CLIPS]),
        }
        if entry["quantization"] == "float16-compute":
            fp16 = CompiledModelRunner(model, "cpu", force_fp16=True)
            entry["fp16_arithmetic"] = {
                **report.quality_metrics(fp16.scores(clips), labels,
                                         ref if ref is not None else scores),
                "fp16_accumulation": cpu_has_fp16_arithmetic()}
        if memory:
            entry["peak_memory_bytes"] = peak_memory_bytes(model.path, threads)
        if gpu:
            from keras_squeezetime.tflite.gpu_compatibility import gpu_accelerator_check

            entry["gpu"] = gpu_accelerator_check(model.path)
        reports.append(entry)
    return reports


def compiled_model_difference(model, clips: np.ndarray) -> dict:
    """`{"max_abs_diff", "clips"}` between the CompiledModel API's outputs and the
    interpreter's, over every output of `clips`."""
    from keras_squeezetime.tflite.compiled_model import CompiledModelRunner

    compiled = CompiledModelRunner(model, "cpu")
    worst = 0.0
    for clip in clips:
        expected, got = model.run(clip), compiled.run(clip)
        worst = max(worst, *(float(np.max(np.abs(got[k] - expected[k]))) for k in expected))
    compiled.close()
    return {"max_abs_diff": worst, "clips": int(len(clips))}
