r"""`squeezetime-eval-tflite`: accuracy, parity with Keras, latency, size, memory and ops.

Example (several variants of one model are timed round-robin and compared in one report):
  squeezetime-eval-tflite --model run/fp32.tflite --model run/int8.tflite \
      --data data/val_list.txt --reference run/model.keras --threads 2 --output report.json

Writes report.json, report.md (table) and report.png (plot). report.json is always
`{"variants": [one report per --model]}`; with a single --model that report's keys are also
at the top level. A report's keys are listed in `keras_squeezetime.tflite.harness`. Clips
are sampled with the frame interval and short side embedded at export (or the flags);
frames and crop size are the model's input, whatever its input layout.
"""

from __future__ import annotations

import sys

from absl import flags

from keras_squeezetime.cli.entry_point import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "A .tflite from squeezetime-export (repeatable).")
flags.DEFINE_string("data", None, "Clips: TFRecord glob pattern or video list (.txt).")
flags.DEFINE_string("reference", None, "Keras model (.keras or a model folder) to compare with.")
flags.DEFINE_integer("threads", 2, "Interpreter threads.")
flags.DEFINE_string("output", None, 'report.json: {"variants": [one report per --model]} '
                    "(one --model: its keys also at the top level); the .md and .png go beside it.")
flags.DEFINE_integer("limit", None, "Evaluate at most this many clips.")
flags.DEFINE_integer("runs", 30, "Timed runs per model (after warm-up).")
flags.DEFINE_integer("warmup", 5, "Untimed runs per model first.")
flags.DEFINE_integer("frame-interval", None, "Override the embedded frame interval.")
flags.DEFINE_integer("short-side", None, "Override the embedded short side.")
flags.DEFINE_bool("memory", True, "Measure peak memory (one subprocess per model).")
flags.DEFINE_bool("gpu", False, "Also run each file on LiteRT's GPU accelerator (needs a GPU "
                  "or a Vulkan driver; reports the ops it refuses).")
flags.mark_flags_as_required(["model", "data", "output"])


def main(argv):
    del argv
    from keras_squeezetime.tflite import harness, report

    try:
        reports = harness.evaluate(
            FLAGS.model, FLAGS.data, FLAGS.reference, FLAGS.threads, FLAGS.limit, FLAGS.runs,
            FLAGS.warmup, FLAGS.memory, FLAGS["frame-interval"].value, FLAGS["short-side"].value,
            gpu=FLAGS.gpu)
    # OSError: missing files, and a --reference preset that cannot be downloaded.
    except (ValueError, OSError, RuntimeError) as error:
        print(f"squeezetime-eval-tflite: error: {error}", file=sys.stderr)
        sys.exit(2)
    paths = report.write_reports(reports, FLAGS.output)
    print(report.markdown_table(reports))
    print("wrote " + ", ".join(paths))


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-eval-tflite", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
