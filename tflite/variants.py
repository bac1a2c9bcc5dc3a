"""`squeezetime-export`'s work: a trained model to one or several LiteRT files.

`export_variant(request, quantization, output)` loads the model, folds it, samples
calibration clips for int8 and writes one file in this process. `export_variants(request)`
writes several into a folder, each in its own subprocess (`python -m
keras_squeezetime.tflite.variants`), because the TF converter leaks memory on every call;
a failed variant leaves no file and does not stop the others.

Names: `<stem>_<quantization>[_uint8in][_stacked].tflite`, stem the model file's (a
folder's `model.keras`, a preset's name).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Sequence

from keras_squeezetime.model_kinds import WEIGHTS_SUFFIX
from keras_squeezetime.tflite.export import QUANTIZATIONS

ALL = "all"
_MODULE = "keras_squeezetime.tflite.variants"


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """What to export, as `squeezetime-export`'s flags say it.

    Attributes:
      model: a `.keras` file or model folder, a `.weights.h5` with `config.json` beside
        it, a preset name or an official `.pth`.
      input_type: "float32" or "uint8".
      input_layout: "frames" or "stacked".
      representative_data: int8 calibration clips (TFRecord pattern or video list).
      representative_clips / min_representative_clips: how many to use / to require.
      float_layers, float_layers_weights, integer_output: int8 options of `export_tflite`.
      target_agreement: int8 only: the top-1 agreement with float to reach on held-out
        clips (`export_tflite`'s `target_agreement`; None: plain int8).
      agreement_data / agreement_clips: those held-out clips (TFRecord pattern or video
        list; None: the last third of the representative clips) / how many to use.
      fold_batch_norm: export the folded inference graph.
      frames, frame_interval, image_size, short_side: clip settings overriding the
        model's `config.json` (None keeps it).
    """

    model: str
    input_type: str = "float32"
    input_layout: str = "frames"
    representative_data: str | None = None
    representative_clips: int = 300
    min_representative_clips: int = 32
    float_layers: tuple[str, ...] = ()
    float_layers_weights: str = "int8"
    integer_output: bool = False
    target_agreement: float | None = None
    agreement_data: str | None = None
    agreement_clips: int = 300
    fold_batch_norm: bool = True
    frames: int | None = None
    frame_interval: int | None = None
    image_size: int | None = None
    short_side: int | None = None

    def check(self, quantizations: Sequence[str]) -> None:
        """Raises ValueError for option combinations that cannot work, before any loading."""
        if "int8" in quantizations and not self.representative_data:
            raise ValueError("--quantization int8 needs --representative-data.")
        if "int8" not in quantizations and (self.float_layers or self.integer_output):
            raise ValueError("--float-layers and --integer-output apply to int8 only.")
        if self.target_agreement is not None:
            if "int8" not in quantizations or self.float_layers:
                raise ValueError("--target-agreement applies to int8 without --float-layers "
                                 "(it chooses the layers kept float).")
            if not 0 < self.target_agreement <= 1:
                raise ValueError(
                    f"--target-agreement must be in (0, 1]; got {self.target_agreement}.")
        elif self.agreement_data:
            raise ValueError("--agreement-data measures --target-agreement; give both.")
        if self.agreement_clips < 1:
            raise ValueError(f"--agreement-clips must be >= 1; got {self.agreement_clips}.")

    def for_variant(self, quantization: str) -> ExportRequest:
        """The request as one variant of a several-variant export sees it: the int8 options
        (`float_layers`, `integer_output`, `target_agreement`, `agreement_data`) apply to
        the int8 file alone and are dropped for the others."""
        if quantization == "int8":
            return self
        return dataclasses.replace(self, float_layers=(), integer_output=False,
                                   target_agreement=None, agreement_data=None)


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


def variant_file_name(model: str, quantization: str, input_type: str,
                      input_layout: str = "frames") -> str:
    """`<stem>_<quantization>[_uint8in][_stacked].tflite`, stem the model file's."""
    from keras_squeezetime.model_config import KERAS_MODEL_FILE

    name = KERAS_MODEL_FILE if os.path.isdir(model) else os.path.basename(model)
    stem = (name[: -len(WEIGHTS_SUFFIX)] if name.endswith(WEIGHTS_SUFFIX)
            else os.path.splitext(name)[0])
    return (f"{stem}_{quantization}{'_uint8in' if input_type == 'uint8' else ''}"
            f"{'_stacked' if input_layout == 'stacked' else ''}.tflite")


def check_output(output: str, quantizations: Sequence[str]) -> None:
    """Raises ValueError, before any work, when `output` cannot take the variants: one
    quantization writes the `.tflite` file it names (not an existing folder, nor a name
    ending in a path separator or without the `.tflite` suffix), several write into the
    folder it names (not a file)."""
    from keras_squeezetime.tflite.export import check_output_file

    if len(quantizations) == 1:
        check_output_file(output)
        # Without these checks `outdir/` became a file `outdir` (and `outdir.labels.txt`).
        if output.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)):
            raise ValueError(
                f"Output {output} names a folder, but one quantization writes one .tflite "
                f"file: name it, e.g. {os.path.join(output, 'model.tflite')}.")
        if not _is_tflite_name(output):
            raise ValueError(
                f"Output {output} does not end in .tflite: one quantization writes the "
                f".tflite file --output names (e.g. {output}.tflite); several write into "
                "the folder it names.")
    elif _is_tflite_name(output) or os.path.isfile(output):
        raise ValueError(
            f"With several quantizations the output is a folder; got the file {output}.")


def _is_tflite_name(path: str) -> bool:
    from keras_squeezetime.model_kinds import TFLITE_SUFFIX

    return path.lower().endswith(TFLITE_SUFFIX)


def check_model(model: str) -> None:
    """Raises FileNotFoundError or ValueError for a model that cannot be exported, unloaded."""
    from keras_squeezetime.model_loading import model_kind

    if model_kind(model) == "tflite":
        raise ValueError(f"{model} is already a LiteRT model; export from the Keras model.")


def load_for_export(request: ExportRequest):
    """`(keras model, ClipSettings, class names or None)` of the request's model, by the
    one loader (`model_loading.load_model`) and `ModelConfig`'s precedence rule."""
    from keras_squeezetime.model_loading import load_model

    check_model(request.model)
    loaded = load_model(request.model, image_size=request.image_size, frames=request.frames)
    settings = loaded.config.clip_settings(
        "val", frame_interval=request.frame_interval, short_side=request.short_side)
    return loaded.model, settings, loaded.config.class_names


def export_variant(request: ExportRequest, quantization: str, output: str) -> dict:
    """Writes one variant at `output` in this process; returns its JSON summary.

    Raises:
      ValueError, FileNotFoundError, RuntimeError: the model, the data or the conversion
        failed; nothing is left at `output`.
      presets.PresetDownloadError (an OSError): a preset that cannot be downloaded.
    """
    from keras_squeezetime.preprocessing import with_preprocessing
    from keras_squeezetime.tflite import calibration
    from keras_squeezetime.tflite.export import export_tflite

    request = request.for_variant(quantization)
    request.check([quantization])
    check_output(output, [quantization])
    if quantization == "int8":
        # Named before the model is loaded, not after.
        calibration.check_source(request.representative_data)
        if request.agreement_data:
            calibration.check_source(request.agreement_data)
    model, settings, class_names = load_for_export(request)
    clips = held_out = None
    if quantization == "int8":
        clips = calibration.calibration_clips(
            request.representative_data, settings, request.representative_clips,
            request.min_representative_clips)
        if request.agreement_data:
            held_out, _ = calibration.load_clips(
                request.agreement_data, settings, request.agreement_clips)
    # Before folding, so that the normalisation a model built without it gains folds too.
    model = with_preprocessing(model)
    if request.fold_batch_norm:
        from keras_squeezetime import fold_batch_norm

        model = fold_batch_norm(model)
    result = export_tflite(
        model, output, quantization, request.input_type, clips, class_names=class_names,
        sampling=dataclasses.asdict(settings), integer_output=request.integer_output,
        float_layers=list(request.float_layers), float_layers_weights=request.float_layers_weights,
        input_layout=request.input_layout, target_agreement=request.target_agreement,
        agreement_dataset=held_out)
    summary = {
        "output": result.path, "size_bytes": result.size_bytes, "quantization": quantization,
        "input_type": result.input_type, "input_layout": result.input_layout,
        "input_shape": list(result.input_shape), "labels": result.labels_path,
        "float_ops": list(result.float_ops), "ops": result.ops,
    }
    if result.int8_report is not None:
        summary["int8"] = result.int8_report
    return summary


def export_variants(request: ExportRequest, quantizations: Sequence[str], folder: str,
                    log=None) -> tuple[list[dict], list[str]]:
    """Each variant into `folder`, each in a subprocess; returns `(summaries, failed)`.

    A failed variant's summary is `{"output", "quantization", "error"}` and its
    subprocess's stderr goes to `log` (a text stream; default stderr). Progress lines
    (`[i/n] quantization: path (seconds)`) go there too.

    Raises:
      ValueError, FileNotFoundError: bad options, model or data, found before converting.
    """
    from keras_squeezetime.tflite.calibration import check_source

    log = log or sys.stderr
    request.check(quantizations)
    check_output(folder, quantizations)
    # Checked once here rather than failing the same way in every subprocess.
    check_model(request.model)
    if "int8" in quantizations:
        check_source(request.representative_data)
        if request.agreement_data:
            check_source(request.agreement_data)
    os.makedirs(folder, exist_ok=True)
    summaries, failed = [], []
    for index, quantization in enumerate(quantizations, 1):
        path = os.path.abspath(os.path.join(folder, variant_file_name(
            request.model, quantization, request.input_type, request.input_layout)))
        start = time.monotonic()
        summary = _export_in_subprocess(request, quantization, path, log)
        status = "FAILED" if "error" in summary else path
        print(f"squeezetime-export: [{index}/{len(quantizations)}] {quantization}: {status} "
              f"({time.monotonic() - start:.1f} s)", file=log, flush=True)
        summaries.append(summary)
        if "error" in summary:
            failed.append(quantization)
    return summaries, failed


def _export_in_subprocess(request: ExportRequest, quantization: str, path: str, log) -> dict:
    """The variant's JSON summary, or `{output, quantization, error}` after its stderr."""
    command = [sys.executable, "-m", _MODULE,
               json.dumps({"request": dataclasses.asdict(request), "quantization": quantization,
                           "output": path})]
    folder = os.path.dirname(path)
    before = set(os.listdir(folder))
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode == 0:
        return json.loads(child.stdout.strip().splitlines()[-1])
    # A killed subprocess (out of memory) skips export_tflite's cleanup: remove what it left.
    for name in set(os.listdir(folder)) - before:
        leftover = os.path.join(folder, name)
        if os.path.isdir(leftover):
            shutil.rmtree(leftover)
        else:
            os.remove(leftover)
    log.write(child.stderr)
    lines = child.stderr.strip().splitlines()
    return {"output": path, "quantization": quantization,
            "error": f"exit code {child.returncode}: {lines[-1] if lines else 'no message'}"}


def _main(argv: list[str]) -> int:
    """Subprocess entry: one variant from a JSON job; its summary as the last stdout line."""
    job = json.loads(argv[0])
    fields = job["request"]
    fields["float_layers"] = tuple(fields["float_layers"])
    try:
        summary = export_variant(ExportRequest(**fields), job["quantization"], job["output"])
    except (ValueError, OSError, RuntimeError) as error:  # OSError: PresetDownloadError too
        print(f"squeezetime-export: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
