r"""`squeezetime-export`: a trained SqueezeTime model to batch-1 LiteRT `.tflite` files.

Examples:
  squeezetime-export --model run/model.keras --quantization int8 \
      --representative-data data/train_list.txt --input-type uint8 --output run/model_int8.tflite
  squeezetime-export --model kinetics400 --quantization float32 --output k400.tflite
  squeezetime-export --model run/model.keras --quantization all \
      --representative-data data/train_list.txt --output run/tflite
  # -> run/tflite/model_float32.tflite, model_float16.tflite, model_dynamic.tflite,
  #    model_int8.tflite (each with its .labels.txt) and a JSON list of what was written

One quantization writes the `.tflite` file `--output` names. Several (a comma-separated
list, or `all`) make `--output` a folder holding `<stem>_<quantization>.tflite` (stem: the
model file's, or the preset name; `_uint8in` is added with `--input-type uint8`), each
converted in its own subprocess because the converter leaks memory on every call; the int8
flags (`--float-layers`, `--integer-output`) apply to the int8 file alone. A failed variant
leaves no file, the others are still written, and the exit code is 2.

Clip sampling (frames, frame interval, image size, short side) defaults to the
`config.json` training wrote beside the model; flags override it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import NoReturn

from absl import app, flags

from keras_squeezetime.tflite.export import QUANTIZATIONS

ALL = "all"

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
flags.DEFINE_string("output", None, "The .tflite file to write; with several quantizations, "
                    "the folder to write them in (created if missing).")
flags.DEFINE_integer("frames", None, "Frames per clip (default: config.json / the model).")
flags.DEFINE_integer("frame-interval", None, "Step between sampled frames.")
flags.DEFINE_integer("image-size", None, "Crop side.")
flags.DEFINE_integer("short-side", None, "Short side before cropping.")
flags.DEFINE_list("float-layers", [], "int8 only: Keras layer paths kept in float, e.g. "
                  "stem,stage1 (whole stem and stage 1), stage2_block1 or ioi/gate_conv3 "
                  "(selective fallback).")
flags.DEFINE_enum("float-layers-weights", "int8", ["int8", "float32"],
                  "int8 only: weights of the --float-layers convolutions; int8 keeps the file "
                  "int8-sized (hybrid ops: float activations, int8 weights).")
flags.DEFINE_bool("integer-output", False, "int8 only: int8 outputs instead of float.")
flags.DEFINE_bool("fold-batch-norm", True, "Export the BN-folded inference graph (same function; "
                  "faster, and fewer int8 requantisations).")
flags.mark_flags_as_required(["model", "output"])

# What each variant's subprocess is given besides --quantization and --output; the int8
# flags go to the int8 subprocess alone, the only one that reads them.
_SHARED_FLAGS = ("model", "input-type", "frames", "frame-interval", "image-size", "short-side",
                 "fold-batch-norm")
_INT8_FLAGS = ("representative-data", "representative-clips", "min-representative-clips",
               "float-layers", "float-layers-weights", "integer-output")
_MODULE = "keras_squeezetime.tflite.cli.export"
WEIGHTS_SUFFIX = ".weights.h5"


def parse_quantizations(value: str) -> list[str]:
    """The quantizations `value` names (`"int8"`, `"float32,int8"`, `"all"`), in order, once each.

    Raises:
      ValueError: an item that is not a quantization; the message names it.
    """
    names: list[str] = []
    for item in value.split(","):
        item = item.strip()
        if item != ALL and item not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {item!r} in {value!r}; choose from "
                             f"{', '.join(QUANTIZATIONS)} or {ALL}, comma-separated.")
        names += [q for q in (QUANTIZATIONS if item == ALL else (item,)) if q not in names]
    return names


def _validate_quantization(value: str) -> bool:
    try:
        parse_quantizations(value)
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


flags.register_validator("quantization", _validate_quantization)


def variant_file_name(model: str, quantization: str, input_type: str) -> str:
    """`<stem>_<quantization>[_uint8in].tflite`, stem the model file's (a folder's model.keras)."""
    from keras_squeezetime.predictor import KERAS_MODEL_NAME

    name = KERAS_MODEL_NAME if os.path.isdir(model) else os.path.basename(model)
    stem = name[: -len(WEIGHTS_SUFFIX)] if name.endswith(WEIGHTS_SUFFIX) else os.path.splitext(name)[0]
    return f"{stem}_{quantization}{'_uint8in' if input_type == 'uint8' else ''}.tflite"


def check_model(model: str) -> None:
    """Raises FileNotFoundError or ValueError for a model that cannot be exported, unloaded."""
    from keras_squeezetime.predictor import model_kind

    if model.endswith(WEIGHTS_SUFFIX):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"Weights file {model} does not exist.")
    elif model_kind(model) == "tflite":
        raise ValueError(f"{model} is already a LiteRT model; export from the Keras model.")


def load_for_export(model: str, overrides: dict):
    """`(keras model, clip settings dict, class names or None)` for any supported model kind."""
    from keras_squeezetime.predictor import load_predictor

    check_model(model)
    if model.endswith(WEIGHTS_SUFFIX):
        return _from_weights(model, overrides)
    predictor = load_predictor(model, **overrides)
    settings = predictor.settings
    return predictor.keras_model, {
        "frames": settings.frames, "frame_interval": settings.frame_interval,
        "image_size": settings.image_size, "short_side": settings.short_side,
    }, predictor.class_names


def _from_weights(path: str, overrides: dict):
    from keras_squeezetime.builder import SqueezeTime
    from keras_squeezetime.tflite.calibration import read_training_config

    config = read_training_config(path)
    if config is None:
        raise ValueError(f"{path}: a .weights.h5 needs the config.json training wrote beside it "
                         "(frames, image_size, num_classes, width_multiplier).")
    settings = {k: int(config[k]) for k in ("frames", "frame_interval", "image_size", "short_side")}
    if overrides.get("frames") not in (None, settings["frames"]):
        raise ValueError(f"{path} was trained on {settings['frames']}-frame clips; "
                         f"cannot export with frames={overrides['frames']}.")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    size = settings["image_size"]
    model = SqueezeTime(
        input_shape=(settings["frames"], size, size, 3), num_classes=int(config["num_classes"]),
        width_multiplier=float(config["width_multiplier"]), weights=path,
        **({"pos_embed_sizes": tuple(config["pos_embed_sizes"])} if "pos_embed_sizes" in config else {}),
    )
    return model, settings, config.get("class_names")


def main(argv: list[str]) -> None:
    """One variant in this process, or several, each in a subprocess (see the module doc)."""
    del argv
    quantizations = parse_quantizations(FLAGS.quantization)
    if "int8" in quantizations and not FLAGS["representative-data"].value:
        raise app.UsageError("--quantization int8 needs --representative-data.")
    if "int8" not in quantizations and (FLAGS["float-layers"].value
                                        or FLAGS["integer-output"].value):
        raise app.UsageError("--float-layers and --integer-output apply to int8 only.")
    if len(quantizations) == 1:
        _export_one(quantizations[0])
        return
    if FLAGS.output.endswith(".tflite") or os.path.isfile(FLAGS.output):
        raise app.UsageError(f"With several quantizations --output is a folder; got the file "
                             f"{FLAGS.output}.")
    sys.exit(_export_variants(quantizations))


def _fail(error: Exception) -> NoReturn:
    print(f"squeezetime-export: error: {error}", file=sys.stderr)
    sys.exit(2)


def _export_one(quantization: str) -> None:
    from keras_squeezetime.predictor import ClipSettings
    from keras_squeezetime.tflite import calibration
    from keras_squeezetime.tflite.export import export_tflite

    overrides = {"frames": FLAGS.frames, "frame_interval": FLAGS["frame-interval"].value,
                 "image_size": FLAGS["image-size"].value, "short_side": FLAGS["short-side"].value}
    try:
        model, settings, class_names = load_for_export(FLAGS.model, overrides)
        clips = None
        if quantization == "int8":
            spec = ClipSettings(**settings)
            clips = calibration.calibration_clips(
                FLAGS["representative-data"].value, spec, FLAGS["representative-clips"].value,
                FLAGS["min-representative-clips"].value)
        if FLAGS["fold-batch-norm"].value:
            from keras_squeezetime import fold_batch_norm

            model = fold_batch_norm(model)
        result = export_tflite(
            model, FLAGS.output, quantization, FLAGS["input-type"].value, clips,
            class_names=class_names, sampling=settings,
            integer_output=FLAGS["integer-output"].value,
            float_layers=FLAGS["float-layers"].value,
            float_layers_weights=FLAGS["float-layers-weights"].value,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        _fail(error)
    print(json.dumps({
        "output": result.path, "size_bytes": result.size_bytes, "quantization": quantization,
        "input_type": result.input_type, "input_shape": list(result.input_shape),
        "labels": result.labels_path, "float_ops": list(result.float_ops), "ops": result.ops,
    }, indent=2))


def _export_variants(quantizations: list[str]) -> int:
    """Each variant by `_export_one` in a subprocess; prints their JSON list; the exit code."""
    from keras_squeezetime.tflite.calibration import check_source

    # Checked once here rather than failing the same way in every subprocess.
    try:
        check_model(FLAGS.model)
        if "int8" in quantizations:
            check_source(FLAGS["representative-data"].value)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    os.makedirs(FLAGS.output, exist_ok=True)
    summaries, failed = [], []
    for index, quantization in enumerate(quantizations, 1):
        path = os.path.abspath(os.path.join(FLAGS.output, variant_file_name(
            FLAGS.model, quantization, FLAGS["input-type"].value)))
        start = time.monotonic()
        summary = _export_in_subprocess(quantization, path)
        status = "FAILED" if "error" in summary else path
        print(f"squeezetime-export: [{index}/{len(quantizations)}] {quantization}: {status} "
              f"({time.monotonic() - start:.1f} s)", file=sys.stderr, flush=True)
        summaries.append(summary)
        if "error" in summary:
            failed.append(quantization)
    print(json.dumps(summaries, indent=2))
    if failed:
        print(f"squeezetime-export: error: {len(failed)} of {len(quantizations)} variants "
              f"failed: {', '.join(failed)}.", file=sys.stderr)
        return 2
    return 0


def _export_in_subprocess(quantization: str, path: str) -> dict:
    """The variant's JSON summary, or `{output, quantization, error}` after its stderr."""
    names = _SHARED_FLAGS + (_INT8_FLAGS if quantization == "int8" else ())
    command = [sys.executable, "-m", _MODULE, f"--quantization={quantization}", f"--output={path}",
               *(FLAGS[name].serialize() for name in names if FLAGS[name].present)]
    folder = os.path.dirname(path)
    before = set(os.listdir(folder))
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode == 0:
        # The summary is the last top-level JSON object on stdout.
        return json.loads(child.stdout[child.stdout.rfind("\n{") + 1:])
    # A killed subprocess (out of memory) skips export_tflite's cleanup: remove what it left.
    for name in set(os.listdir(folder)) - before:
        leftover = os.path.join(folder, name)
        if os.path.isdir(leftover):
            shutil.rmtree(leftover)
        else:
            os.remove(leftover)
    sys.stderr.write(child.stderr)
    lines = child.stderr.strip().splitlines()
    return {"output": path, "quantization": quantization,
            "error": f"exit code {child.returncode}: {lines[-1] if lines else 'no message'}"}


def run():
    app.run(main)


if __name__ == "__main__":
    run()
