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
  int8-bias             empirical bias correction of int8 (`bias_corrected` below; kept
                        here, not in the library: it did not raise agreement)
  int8-mse-bias         MSE ranges, then bias correction
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
    """One variant the CLI does not expose: MSE ranges, bias correction or QAT (`--method`)."""
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
    float_graph = calibrated  # bias correction's reference (ranges do not change the floats)
    if args.method in ("mse", "mse-bias"):
        from keras_squeezetime.tflite.activation_ranges import mse_ranges

        calibrated, info = mse_ranges(calibrated, clips[:128])
    elif args.method == "qat":
        from keras_squeezetime.tflite import qat

        held_out, _ = calibration.load_clips(args.held_out, spec, 256)
        result = qat.fine_tune(calibrated, clips, held_out, epochs=args.qat_epochs,
                               learning_rate=args.qat_learning_rate, log=print)
        calibrated = result.calibrated
        info = {"best_epoch": result.best_epoch, "history": list(result.history)}
    model_bytes = finish_converted(quantize(calibrated, input_type="uint8"), False, "uint8")
    if args.method in ("bias", "mse-bias"):
        model_bytes, info["bias_correction"] = bias_corrected(model_bytes, float_graph, clips)
    model_bytes = metadata.embed(model_bytes, loaded.config.class_names,
                                 {"quantization": "int8", "input_type": "uint8",
                                  "input_layout": "frames", **dataclasses.asdict(spec)})
    with open(args.output, "wb") as handle:
        handle.write(model_bytes)
    print(json.dumps({"output": args.output, "method": args.method, **info}, default=str))


def _tensor_values(model_bytes: bytes, clips, names: list[str], dtype):
    """`{tensor name: (clips, positions, channels) float32}`: dequantised intermediate values."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite.tensor_quantization import dequantize_output

    # Keeping every tensor also keeps XNNPACK off: LiteRT's reference int8 kernels.
    interpreter = Interpreter(model_content=model_bytes, num_threads=2,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    index = interpreter.get_input_details()[0]["index"]
    values = {name: [] for name in names}
    for clip in clips:
        interpreter.set_tensor(index, clip[None].astype(dtype))
        interpreter.invoke()
        for name in names:
            value = dequantize_output(interpreter.get_tensor(details[name]["index"]), details[name])
            values[name].append(value.reshape(-1, value.shape[-1]))
    return {name: np.stack(v) for name, v in values.items()}


def bias_corrected(model_bytes: bytes, calibrated: bytes, clips) -> tuple[bytes, dict]:
    """Empirical bias correction of a full-int8 model (`--method bias`), in graph order.

    For each convolution / fully-connected op with a bias, the per-output-channel mean of
    (int8 output - float output) on `clips`, measured with every earlier op already
    corrected, is subtracted from its int32 bias (scale input_scale * weight_scale). The
    float outputs come from `calibrated` (the same graph in float, tensor names shared).
    After a fused ReLU only positions the float output keeps count: there the error is the
    pre-activation one. Returns `(model, summary)`.
    """
    import numpy as np

    from keras_squeezetime.tflite import flatbuffer

    model = flatbuffer.read(model_bytes)
    subgraph = model.subgraphs[0]
    float_names = set(flatbuffer.tensor_names(flatbuffer.read(calibrated)))
    targets = []  # (output name, bias tensor, fused ReLU)
    for _, op, name in flatbuffer.operators(model):
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        output = subgraph.tensors[op.outputs[0]].name.decode()
        if len(op.inputs) > 2 and op.inputs[2] >= 0 and output in float_names:
            targets.append((output, subgraph.tensors[op.inputs[2]],
                            op.builtinOptions.fusedActivationFunction == 1))
    reference = _tensor_values(calibrated, clips, [t[0] for t in targets], np.float32)
    input_dtype = np.uint8 if subgraph.tensors[subgraph.inputs[0]].type == \
        flatbuffer.tensor_type("UINT8") else np.float32

    def channel_means(current: bytes, names: list[str]) -> dict[str, np.ndarray]:
        values = _tensor_values(current, clips, names, input_dtype)
        means = {}
        for name, _, relu in (t for t in targets if t[0] in names):
            error, kept = values[name] - reference[name], np.ones_like(reference[name])
            if relu:
                kept = (reference[name] > 0).astype(np.float32)
            means[name] = (error * kept).sum((0, 1)) / np.maximum(kept.sum((0, 1)), 1.0)
        return means

    before = channel_means(model_bytes, [t[0] for t in targets])
    changed = 0
    for position, (name, bias, _) in enumerate(targets):
        mean = before[name] if position == 0 else \
            channel_means(flatbuffer.write(model), [name])[name]
        buffer = model.buffers[bias.buffer]
        values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
        step = np.round(-mean / np.asarray(bias.quantization.scale, np.float64)).astype(np.int64)
        changed += int(np.count_nonzero(step))
        values = np.clip(values + step, -2**31, 2**31 - 1).astype(np.int32)
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    corrected = flatbuffer.write(model)
    after = channel_means(corrected, [t[0] for t in targets])
    ratio = lambda means: float(np.median([np.abs(m).mean() for m in means.values()]))  # noqa: E731
    return corrected, {"ops": len(targets), "channels_changed": changed,
                       "median_abs_channel_mean_error": [ratio(before), ratio(after)]}


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
    for method in ("mse", "bias", "mse-bias") + (("qat",) if args.qat_epochs else ()):
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
    parser.add_argument("--method", choices=["mse", "bias", "mse-bias", "qat"],
                        help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.time:
        time_file(parsed.time, parsed.runs)
    else:
        (library_variant if parsed.method else main)(parsed)
