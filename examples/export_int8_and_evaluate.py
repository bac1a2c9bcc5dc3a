"""Export a trained model to int8 LiteRT and prove it against the Keras model.

    python examples/export_int8_and_evaluate.py --model runs/mine/run/model.keras \
        --calibration 'runs/mine/records/train/*.tfrecord' --data 'runs/mine/records/val/*.tfrecord'

Runs `squeezetime-export` twice (float32 and int8 with raw uint8 input) and
`squeezetime-eval-tflite` on both. The TF 2.21 converter leaks memory on each call, so each
conversion runs in its own process, as the CLIs do. The summary is read from the report's
`"variants"` list, which `squeezetime-eval-tflite` writes for one `--model` or several.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def run(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], check=True)


def summary_lines(report: str) -> list[str]:
    """One line per variant of a `squeezetime-eval-tflite` report.json."""
    with open(report, encoding="utf-8") as handle:
        variants = json.load(handle)["variants"]
    return [f"{v['variant']}: top-1 {v['top1']:.1%}, agreement with Keras "
            f"{v['agreement_top1']:.1%}, {v['size_bytes'] / 1e6:.1f} MB, "
            f"{v['latency_ms']['median']:.1f} ms" for v in variants]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help=".keras file beside its config.json")
    parser.add_argument("--calibration", required=True,
                        help="TFRecord pattern or video list (.txt)")
    parser.add_argument("--data", required=True,
                        help="evaluation TFRecord pattern or video list (.txt)")
    parser.add_argument("--output", default="litert")
    parser.add_argument("--calibration-clips", type=int, default=300)
    args = parser.parse_args()

    os.makedirs(args.output, exist_ok=True)
    paths = {q: os.path.join(args.output, f"model_{q}.tflite") for q in ("float32", "int8")}
    for quantization, path in paths.items():
        run("keras_squeezetime.tflite.cli.export", "--model", args.model,
            "--quantization", quantization, "--input-type", "uint8",
            "--representative-data", args.calibration,
            "--representative-clips", str(args.calibration_clips),
            "--min-representative-clips", str(min(32, args.calibration_clips)), "--output", path)
    report = os.path.join(args.output, "report.json")
    run("keras_squeezetime.tflite.cli.evaluate", "--model", paths["float32"],
        "--model", paths["int8"], "--data", args.data, "--reference", args.model,
        "--output", report)
    print("\n".join(summary_lines(report)))


if __name__ == "__main__":
    main()
