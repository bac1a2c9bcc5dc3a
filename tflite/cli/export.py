r"""`squeezetime-export`: a trained SqueezeTime model to batch-1 LiteRT `.tflite` files.

Examples:
  squeezetime-export --model run/model.keras --quantization int8 \
      --representative-data data/train_list.txt --input-type uint8 --output run/model_int8.tflite
  squeezetime-export --model run/model.keras --quantization int8 --target-agreement 0.98 \
      --representative-data data/train_list.txt --agreement-data data/heldout_list.txt \
      --input-type uint8 --output run/model_int8.tflite
  squeezetime-export --model kinetics400 --quantization float32 --output k400.tflite
  squeezetime-export --model run/model.keras --quantization float32,int8 --input-type uint8 \
      --input-layout stacked --representative-data data/train_list.txt --output run/tflite
  # -> run/tflite/model_float32_uint8in_stacked.tflite, model_int8_uint8in_stacked.tflite
  #    (each with its .labels.txt) and a JSON list of what was written

One quantization writes the `.tflite` file `--output` names. Several (a comma-separated
list, or `all`) make `--output` a folder holding `<stem>_<quantization>[_uint8in]
[_stacked].tflite`, each converted in its own subprocess (see
`keras_squeezetime.tflite.variants`); the int8 flags apply to the int8 file alone. A failed
variant leaves no file, the others are still written, and the exit code is 2.

`--input-layout stacked` takes `(1, S, S, 3T)` frames (frame t's RGB at channels
3t..3t+2) and has no tensor of rank above 4: the layout for GPU and NPU accelerators.

`--target-agreement T` (int8) writes the cheapest int8 model whose top-1 agrees with the
float model on at least T of the held-out clips (`--agreement-data`, else the last third of
the representative clips): full int8 with calibrated or MSE activation ranges, then with
activations equalised per channel, then the fewest blocks kept float (see
`int8_agreement`). Its JSON summary gains `"int8"`: method, agreement reached, held-out clip
count, the agreement confirmed on the held-out clips kept out of the search (every third),
blocks kept float and every candidate measured.
If no candidate reaches T the export fails (exit 2, nothing written) naming the best
agreement found.

Clip sampling (frames, frame interval, image size, short side) defaults to the
`config.json` training wrote beside the model; flags override it.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

from absl import app, flags

from keras_squeezetime.cli.clip_flags import define_clip_flags
from keras_squeezetime.cli.entry_point import run_tool
from keras_squeezetime.tflite.export import QUANTIZATIONS
from keras_squeezetime.tflite.input_layout import LAYOUTS
from keras_squeezetime.tflite.variants import ALL

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras file (or folder with model.keras), a .weights.h5 "
                    "with config.json beside it, a preset name or an official .pth.")
flags.DEFINE_string("quantization", "float32", "Weights/activations precision: one of "
                    f"{'|'.join(QUANTIZATIONS)}, a comma-separated list of them or {ALL}.")
flags.DEFINE_string("representative-data", None, "int8 calibration clips: a TFRecord glob "
                    "pattern or an mmaction video list (.txt).")
flags.DEFINE_integer("representative-clips", 300, "Calibration clips to use (at most).")
flags.DEFINE_integer("min-representative-clips", 32, "Fail when fewer calibration clips exist.")
flags.DEFINE_enum("input-type", "float32", ["float32", "uint8"],
                  "uint8: raw RGB frames in, preprocessing inside the model.")
flags.DEFINE_enum("input-layout", "frames", list(LAYOUTS),
                  "frames: (1, T, S, S, 3). stacked: (1, S, S, 3T), frame t's RGB at channels "
                  "3t..3t+2, no tensor of rank > 4 (GPU/NPU accelerators).")
flags.DEFINE_string("output", None, "The .tflite file to write (not a folder); with several "
                    "quantizations, the folder to write them in (created if missing).")
define_clip_flags()  # unset: config.json / the model's own settings
flags.DEFINE_list("float-layers", [], "int8 only: Keras layer paths kept in float, e.g. "
                  "stem,stage1 (whole stem and stage 1), stage2_block1 or ioi/gate_conv3 "
                  "(selective fallback).")
flags.DEFINE_enum("float-layers-weights", "int8", ["int8", "float32"],
                  "int8 only: weights of the --float-layers convolutions; int8 keeps the file "
                  "int8-sized (hybrid ops: float activations, int8 weights).")
flags.DEFINE_bool("integer-output", False, "int8 only: int8 outputs instead of float.")
flags.DEFINE_float("target-agreement", None, "int8 only: the top-1 agreement with the float "
                   "model to reach on held-out clips, e.g. 0.98. The cheapest int8 model that "
                   "reaches it is written (better activation ranges, then the fewest blocks kept "
                   "float); if none does, the export fails naming the best reached.")
flags.DEFINE_string("agreement-data", None, "Held-out clips measuring --target-agreement (TFRecord "
                    "pattern or video list), ideally clips the model never trained on; default: "
                    "the last third of the representative clips, then not used for calibration.")
flags.DEFINE_integer("agreement-clips", 300, "Held-out clips to use (at most).")
flags.DEFINE_bool("fold-batch-norm", True, "Export the BN-folded inference graph (same function; "
                  "faster, and fewer int8 requantisations).")
flags.mark_flags_as_required(["model", "output"])


def _validate_quantization(value: str) -> bool:
    from keras_squeezetime.tflite.variants import parse_quantizations

    try:
        parse_quantizations(value)
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


flags.register_validator("quantization", _validate_quantization)


def request_from_flags():
    """The `ExportRequest` the flags describe."""
    from keras_squeezetime.tflite.variants import ExportRequest

    return ExportRequest(
        model=FLAGS.model, input_type=FLAGS["input-type"].value,
        input_layout=FLAGS["input-layout"].value,
        representative_data=FLAGS["representative-data"].value,
        representative_clips=FLAGS["representative-clips"].value,
        min_representative_clips=FLAGS["min-representative-clips"].value,
        float_layers=tuple(FLAGS["float-layers"].value),
        float_layers_weights=FLAGS["float-layers-weights"].value,
        integer_output=FLAGS["integer-output"].value,
        target_agreement=FLAGS["target-agreement"].value,
        agreement_data=FLAGS["agreement-data"].value,
        agreement_clips=FLAGS["agreement-clips"].value,
        fold_batch_norm=FLAGS["fold-batch-norm"].value,
        frames=FLAGS.frames, frame_interval=FLAGS["frame-interval"].value,
        image_size=FLAGS["image-size"].value, short_side=FLAGS["short-side"].value)


def _fail(error: Exception) -> NoReturn:
    print(f"squeezetime-export: error: {error}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    """One variant in this process, or several, each in a subprocess (see the module doc)."""
    del argv
    from keras_squeezetime.tflite import variants

    quantizations = variants.parse_quantizations(FLAGS.quantization)
    request = request_from_flags()
    try:
        request.check(quantizations)
        variants.check_output(FLAGS.output, quantizations)
    except ValueError as error:
        raise app.UsageError(str(error), exitcode=2) from None
    try:
        if len(quantizations) == 1:
            print(json.dumps(variants.export_variant(request, quantizations[0], FLAGS.output),
                             indent=2))
            return
        summaries, failed = variants.export_variants(request, quantizations, FLAGS.output)
    # OSError: missing files, and a preset that cannot be downloaded (PresetDownloadError).
    except (ValueError, OSError, RuntimeError) as error:
        _fail(error)
    print(json.dumps(summaries, indent=2))
    if failed:
        print(f"squeezetime-export: error: {len(failed)} of {len(quantizations)} variants "
              f"failed: {', '.join(failed)}.", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-export", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
