"""`squeezetime-eval-tflite`: accuracy, parity with Keras, latency, size, memory and ops.

Example (several variants of one model are timed round-robin and compared in one report):
  squeezetime-eval-tflite --model run/fp32.tflite --model run/int8.tflite \
      --data data/val_list.txt --reference run/model.keras --threads 2 --output report.json

Writes report.json, report.md (table) and report.png (plot). Clips are sampled with the
frame interval and short side embedded at export (or the flags); frames and crop size
are the model's input.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "A .tflite from squeezetime-export (repeatable).")
flags.DEFINE_string("data", None, "Clips: TFRecord glob pattern or video list (.txt).")
flags.DEFINE_string("reference", None, "Keras model (.keras or a model folder) to compare with.")
flags.DEFINE_integer("threads", 2, "Interpreter threads.")
flags.DEFINE_string("output", None, "report.json (the .md and .png go beside it).")
flags.DEFINE_integer("limit", None, "Evaluate at most this many clips.")
flags.DEFINE_integer("runs", 30, "Timed runs per model (after warm-up).")
flags.DEFINE_integer("warmup", 5, "Untimed runs per model first.")
flags.DEFINE_integer("frame-interval", None, "Override the embedded frame interval.")
flags.DEFINE_integer("short-side", None, "Override the embedded short side.")
flags.DEFINE_bool("memory", True, "Measure peak memory (one subprocess per model).")
flags.mark_flags_as_required(["model", "data", "output"])


def reference_logits(path: str, clips: np.ndarray) -> np.ndarray:
    """Logits of the Keras model at `path` (its head's activation bypassed)."""
    import keras

    from keras_squeezetime.predictor import load_predictor
    from keras_squeezetime.tflite.export import _head

    model = load_predictor(path).keras_model
    _head(model).activation = keras.activations.linear
    return np.concatenate([np.asarray(model(clips[i:i + 8], training=False))
                           for i in range(0, len(clips), 8)])


def evaluate(paths, data, reference, threads, limit=None, runs=30, warmup=5, memory=True,
             frame_interval=None, short_side=None) -> list[dict]:
    """One report dict per model (see `report.write_reports`)."""
    from keras_squeezetime.predictor import ClipSettings
    from keras_squeezetime.tflite import calibration, metadata, report
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.measurement import measure_latency, peak_memory_bytes

    models = [LiteRTModel(path, threads) for path in paths]
    shapes = {m.input_shape for m in models}
    if len(shapes) != 1:
        raise ValueError(f"The models take different inputs {sorted(shapes)}; compare variants "
                         "of one model only.")
    configs = [metadata.read_metadata(open(m.path, "rb").read())[1] for m in models]
    _, frames, size, _, _ = models[0].input_shape
    spec = ClipSettings(
        frames=frames, image_size=size,
        frame_interval=frame_interval or configs[0].get("frame_interval", 4),
        short_side=short_side or configs[0].get("short_side", max(size, round(size * 256 / 224))),
    )
    clips, labels = calibration.load_clips(data, spec, limit)
    models[0].check_clip_shape(clips.shape[1:])
    ref = reference_logits(reference, clips) if reference else None
    latencies = measure_latency(models, clips[0], runs, warmup)
    reports = []
    for model, config, latency in zip(models, configs, latencies):
        entry = {
            "variant": os.path.splitext(os.path.basename(model.path))[0],
            "model": model.path,
            "quantization": config.get("quantization"),
            "input_type": str(model.input_dtype),
            "threads": threads,
            "size_bytes": os.path.getsize(model.path),
            "latency_ms": latency,
            "ops": model.op_counts(),
            "xnnpack": model.delegation(),
            **report.quality_metrics(model.scores(clips), labels, ref),
        }
        if memory:
            entry["peak_memory_bytes"] = peak_memory_bytes(model.path, threads)
        reports.append(entry)
    return reports


def main(argv):
    del argv
    from keras_squeezetime.tflite import report

    try:
        reports = evaluate(
            FLAGS.model, FLAGS.data, FLAGS.reference, FLAGS.threads, FLAGS.limit, FLAGS.runs,
            FLAGS.warmup, FLAGS.memory, FLAGS["frame-interval"].value, FLAGS["short-side"].value)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"squeezetime-eval-tflite: error: {error}", file=sys.stderr)
        sys.exit(2)
    paths = report.write_reports(reports, FLAGS.output)
    print(report.markdown_table(reports))
    print("wrote " + ", ".join(paths))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
