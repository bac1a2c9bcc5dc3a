"""Which ops int8 hurts: the TFLite quantisation debugger's per-op error, worst first.

Calibrates the exported graph (`fold_batch_norm`, as `squeezetime-export` exports it) on
`--clips` clips of the data, quantises it with numeric verification and runs the
debugger on the same clips (`keras_squeezetime.tflite.quantization_debugger`). Each op's
error is in units of its quantisation step: 0.29 is pure rounding. Prints the worst ops
and the mean per stage. BENCHMARKS.md's "Diagnosis" paragraph comes from here.

Usage:
  python benchmarks/tflite_quant_diagnosis.py /tmp/st_hard/model /tmp/st_hard/data/train_list.txt \
      [--clips 40] [--top 12]
"""

from __future__ import annotations

import argparse


def main(model_path: str, data: str, clips: int, top: int) -> None:
    import numpy as np

    from keras_squeezetime import fold_batch_norm
    from keras_squeezetime.model_loading import load_model
    from keras_squeezetime.tflite import calibration, op_profile
    from keras_squeezetime.tflite.export import calibrated_model
    from keras_squeezetime.tflite.quantization_debugger import layer_errors

    loaded = load_model(model_path)
    settings = loaded.config.clip_settings("val")
    data_clips = calibration.calibration_clips(data, settings, clips, min_clips=1)
    calibrated = calibrated_model(fold_batch_norm(loaded.model), data_clips)
    rows = layer_errors(calibrated, data_clips, np.float32)
    print(f"\n{len(rows)} quantised op outputs, {len(data_clips)} clips; error in quantisation "
          "steps (rmse / scale; 0.29 is pure rounding)\n")
    print("| op output | stage | rmse/scale |\n|---|---|---|")
    for name, row in list(rows.items())[:top]:
        print(f"| {name[-70:]} | {op_profile.group_of_tensor(name)} | {row['rmse/scale']:.2f} |")
    stages: dict[str, list[float]] = {}
    for name, row in rows.items():
        stages.setdefault(op_profile.group_of_tensor(name), []).append(row["rmse/scale"])
    print("\n| stage | ops | mean rmse/scale | max |\n|---|---|---|---|")
    for stage, values in stages.items():
        print(f"| {stage} | {len(values)} | {np.mean(values):.2f} | {np.max(values):.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="Keras model (.keras, model folder, ...).")
    parser.add_argument("data", help="Calibration clips: video list (.txt) or TFRecord pattern.")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    main(args.model, args.data, args.clips, args.top)
