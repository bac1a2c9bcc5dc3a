"""int8 agreement against the number of calibration clips: one export and one evaluation
per size, each export in its own subprocess (`squeezetime-export`'s library).

Usage:
  python benchmarks/tflite_calibration_sweep.py /tmp/st_hard/model \
      /tmp/st_hard/data/train_list.txt /tmp/st_hard/data/val_list.txt \
      --sizes 64,300,384 --workdir /tmp/calibration_sweep [--input-layout stacked]

Prints size, clips used, top-1, agreement with the Keras model and logit cosine per size.
BENCHMARKS.md's calibration-size sentence comes from here.
"""

from __future__ import annotations

import argparse
import os


def main(model: str, train: str, val: str, sizes: list[int], workdir: str, layout: str) -> None:
    from keras_squeezetime.tflite import harness
    from keras_squeezetime.tflite.variants import ExportRequest, export_variants

    rows = []
    for size in sizes:
        request = ExportRequest(model, input_type="uint8", input_layout=layout,
                                representative_data=train, representative_clips=size,
                                min_representative_clips=min(size, 32))
        folder = os.path.join(workdir, f"clips_{size}")
        summaries, failed = export_variants(request, ["int8"], folder)
        if failed:
            raise RuntimeError(f"int8 export with {size} calibration clips failed: {summaries}")
        report, = harness.evaluate([summaries[0]["output"]], val, model, runs=1, warmup=0,
                                   memory=False)
        rows.append((size, report))
    print("\n| calibration clips | val top-1 | top-1 agreement | logit cosine |")
    print("|---|---|---|---|")
    for size, report in rows:
        print(f"| {size} | {report['top1']:.3f} | {report['agreement_top1']:.3f} | "
              f"{report['logit_cosine']:.4f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="Keras model (.keras or model folder).")
    parser.add_argument("train", help="Calibration data (video list or TFRecord pattern).")
    parser.add_argument("val", help="Evaluation data.")
    parser.add_argument("--sizes", default="64,300,384", help="Comma-separated clip counts.")
    parser.add_argument("--workdir", default="/tmp/calibration_sweep")
    parser.add_argument("--input-layout", default="frames", choices=["frames", "stacked"])
    args = parser.parse_args()
    main(args.model, args.train, args.val, [int(s) for s in args.sizes.split(",")],
         args.workdir, args.input_layout)
