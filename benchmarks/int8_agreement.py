"""int8 methods side by side on one model: agreement with float, accuracy, size, latency.

Each variant is written by its own command in its own process (the converter leaks memory
per call), then all are evaluated in ONE `squeezetime-eval-tflite` run (agreement and top-1
against the Keras model on the evaluation clips). Latency: each file timed alone in its own
process (2 threads, after warm-up), the files in turn, for --cycles cycles; the ratio to
plain int8 is of the medians over all cycles, all from the same run:

  dynamic               squeezetime-export --quantization dynamic (int8 weights only)
  int8                  squeezetime-export --quantization int8 (calibrated min/max ranges)
  int8-mse              MSE activation ranges (`tflite/activation_ranges.py`)
  int8-qat              quantisation-aware fine-tuning (`tflite/qat.py`), --qat-epochs > 0
  int8-eq-mse-qat       equalisation, MSE ranges, then quantisation-aware fine-tuning
  int8-bias             empirical bias correction (`tflite/bias_correction.py`)
  int8-mse-bias         MSE ranges, then bias correction
  int8-eq-mse           per-channel activation equalisation (`tflite/activation_equalization.py`),
                        then MSE ranges
  int8-eq-mse-bias      equalisation, MSE ranges, then bias correction
  int8-fallback         squeezetime-export --float-layers stem,stage1,stage2 (hybrid)
  int8-target-<t>       squeezetime-export --target-agreement t --agreement-data HELD_OUT

Calibration uses the first --calibration-clips clips of TRAIN_LIST; the search and the QAT
epoch selection use HELD_OUT (clips neither trained on nor evaluated); EVAL_LIST measures.

Usage (BENCHMARKS.md, "int8 that agrees with float"):
  python benchmarks/tflite_quality_model.py /tmp/st_hard/data /tmp/st_hard/model \\
      --train-per-class 48 --dropout 0.2 --schedule constant                    # model B
  squeezetime-synthetic --output /tmp/st_heldout --train-per-class 0 --val-per-class 64 \\
      --frames 40 --height 64 --width 64 --seed 1                               # held-out clips
  python benchmarks/int8_agreement.py --model /tmp/st_hard/model/model.keras \\
      --train-list /tmp/st_hard/data/train_list.txt --eval-list /tmp/st_hard/data/val_list.txt \\
      --held-out /tmp/st_heldout/val_list.txt --targets 0.98,0.97 --qat-epochs 4 \\
      --output /tmp/st_hard/int8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

EXPORT = [sys.executable, "-m", "keras_squeezetime.tflite.cli.export"]
EVALUATE = [sys.executable, "-m", "keras_squeezetime.tflite.cli.evaluate"]


def _run(command: list[str], log: str) -> int:
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    print(f"[{time.monotonic() - started:6.0f} s] exit {code}: {' '.join(command[3:])}",
          flush=True)
    return code


def library_variant(args) -> None:
    """One variant the CLI does not expose (`--method`): MSE ranges, equalisation, bias
    correction (in that order when combined) or QAT."""
    import dataclasses

    from keras_squeezetime import fold_batch_norm
    from keras_squeezetime.model_loading import load_model
    from keras_squeezetime.tflite import calibration, metadata
    from keras_squeezetime.tflite.export import calibrated_model, finish_converted
    from keras_squeezetime.tflite.int8_quantization import quantize

    loaded = load_model(args.model)
    spec = loaded.config.clip_settings("val")
    clips = calibration.calibration_clips(args.train_list, spec, args.calibration_clips)
    calibrated = calibrated_model(fold_batch_norm(loaded.model), clips)
    info = {}
    if args.method.startswith("eq-"):
        from keras_squeezetime.tflite.activation_equalization import equalize

        calibrated, info["equalization"] = equalize(calibrated, clips)
    float_graph = calibrated  # bias correction's reference (ranges do not change the floats)
    if "mse" in args.method:
        from keras_squeezetime.tflite.activation_ranges import mse_ranges

        calibrated, ranges_info = mse_ranges(calibrated, clips[:128])
        info.update(ranges_info)
    if args.method.endswith("qat"):
        from keras_squeezetime.tflite import qat

        held_out, _ = calibration.load_clips(args.held_out, spec, 256)
        result = qat.fine_tune(calibrated, clips, held_out, epochs=args.qat_epochs,
                               learning_rate=args.qat_learning_rate, log=print)
        calibrated = result.calibrated
        info.update(best_epoch=result.best_epoch, history=list(result.history))
    model_bytes = finish_converted(quantize(calibrated, input_type="uint8"), False, "uint8")
    if args.method.endswith("bias"):
        from keras_squeezetime.tflite.bias_correction import correct_biases

        model_bytes, info["bias_correction"] = correct_biases(model_bytes, float_graph, clips)
    model_bytes = metadata.embed(model_bytes, loaded.config.class_names,
                                 {"quantization": "int8", "input_type": "uint8",
                                  "input_layout": "frames", **dataclasses.asdict(spec)})
    with open(args.output, "wb") as handle:
        handle.write(model_bytes)
    print(json.dumps({"output": args.output, "method": args.method, **info}, default=str))


def time_file(path: str, runs: int) -> None:
    """Worker: median ms of `runs` invocations of one file, alone in this process."""
    import numpy as np

    from keras_squeezetime.tflite.interpreter import LiteRTModel

    model = LiteRTModel(path, threads=2)
    clip = np.random.default_rng(1).integers(0, 256, model.input_shape[1:]).astype(np.float32)
    for _ in range(20):
        model.time_invoke(clip)
    times = [model.time_invoke(clip) * 1e3 for _ in range(runs)]
    print(f"MS {float(np.median(times))}")


def latencies(files: dict[str, str], cycles: int, runs: int) -> dict[str, float]:
    """`{name: median ms}`, each file timed in its own process, in turn, `cycles` times."""
    import numpy as np

    times: dict[str, list[float]] = {name: [] for name in files}
    for cycle in range(cycles):
        order = list(files) if cycle % 2 == 0 else list(files)[::-1]
        for name in order:
            result = subprocess.run([sys.executable, __file__, "--time", files[name], "--runs",
                                     str(runs), "--model", "-", "--train-list", "-",
                                     "--held-out", "-", "--output", "-"],
                                    capture_output=True, text=True, check=True)
            times[name].append(float(result.stdout.split("MS ")[-1]))
        print(f"latency cycle {cycle + 1}/{cycles}", flush=True)
    return {name: float(np.median(values)) for name, values in times.items()}


def main(args) -> None:
    os.makedirs(args.output, exist_ok=True)
    common = ["--model", args.model, "--input-type", "uint8", "--representative-data",
              args.train_list, "--representative-clips", str(args.calibration_clips)]
    out = lambda name: os.path.join(args.output, f"{name}.tflite")  # noqa: E731
    logs = lambda name: os.path.join(args.output, f"{name}.log")  # noqa: E731
    variants = {
        # int8 weights, float activations quantised per run: the floor of any int8 weights.
        "dynamic": EXPORT + ["--quantization", "dynamic", "--model", args.model,
                             "--input-type", "uint8", "--output", out("dynamic")],
        "int8": EXPORT + ["--quantization", "int8", *common, "--output", out("int8")],
        "int8-fallback": EXPORT + ["--quantization", "int8", *common, "--float-layers",
                                   "stem,stage1,stage2", "--output", out("int8-fallback")],
    }
    for method in ("mse", "bias", "mse-bias", "eq-mse", "eq-mse-bias") + (
            ("qat", "eq-mse-qat") if args.qat_epochs else ()):
        variants[f"int8-{method}"] = [
            sys.executable, __file__, "--method", method, "--model", args.model,
            "--train-list", args.train_list, "--held-out", args.held_out,
            "--calibration-clips", str(args.calibration_clips), "--qat-epochs",
            str(args.qat_epochs), "--qat-learning-rate", str(args.qat_learning_rate),
            "--output", out(f"int8-{method}")]
    for target in filter(None, args.targets.split(",")):
        variants[f"int8-target-{target}"] = EXPORT + [
            "--quantization", "int8", *common, "--target-agreement", target,
            "--agreement-data", args.held_out, "--output", out(f"int8-target-{target}")]
    written = []
    for name, command in variants.items():
        if os.path.exists(out(name)) or _run(command, logs(name)) == 0:
            written.append(name)
    files = [out("float32")]
    if not os.path.exists(files[0]):
        _run(EXPORT + ["--quantization", "float32", "--model", args.model, "--input-type",
                       "uint8", "--output", files[0]], logs("float32"))
    files += [out(name) for name in written]
    _run(EVALUATE + [arg for f in files for arg in ("--model", f)] + [
        "--data", args.eval_list, "--reference", args.model, "--threads", "2",
        "--runs", "20", "--memory=false", "--output", os.path.join(args.output, "report.json")],
        logs("report"))
    with open(os.path.join(args.output, "report.json"), encoding="utf-8") as handle:
        reports = {r["variant"]: r for r in json.load(handle)["variants"]}
    speed = latencies({name: r["model"] for name, r in reports.items()}, args.cycles, args.runs)
    with open(os.path.join(args.output, "latency.json"), "w", encoding="utf-8") as handle:
        json.dump(speed, handle, indent=2)
    fp32 = reports["float32"]["size_bytes"]
    print("| variant | agreement | top-1 (float's) | size x fp32 | latency x int8 |")
    print("|---|---|---|---|---|")
    for name, r in reports.items():
        print(f"| {name} | {r['agreement_top1']:.4f} | {r['top1']:.4f} ({r['reference_top1']:.4f}) "
              f"| {r['size_bytes'] / fp32:.3f} | {speed[name] / speed['int8']:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-list", required=True)
    parser.add_argument("--eval-list")
    parser.add_argument("--held-out", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--targets", default="0.98")
    parser.add_argument("--calibration-clips", type=int, default=300)
    parser.add_argument("--qat-epochs", type=int, default=0)
    parser.add_argument("--qat-learning-rate", type=float, default=1e-4)
    parser.add_argument("--runs", type=int, default=300, help="Timed runs per process.")
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--time", help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=["mse", "bias", "mse-bias", "eq-mse", "eq-mse-bias",
                                             "qat", "eq-mse-qat"],
                        help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.time:
        time_file(parsed.time, parsed.runs)
    else:
        (library_variant if parsed.method else main)(parsed)
