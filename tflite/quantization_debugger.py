"""Where int8 loses accuracy: the TFLite quantisation debugger's per-layer errors.

Diagnosis, not conversion: `layer_errors` quantises a calibrated model with numeric
verification ops and runs the debugger on clips, giving each quantised op's error in
units of its quantisation step. BENCHMARKS.md's "Diagnosis" paragraph is printed by
`python benchmarks/tflite_quant_diagnosis.py`.
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.tflite import compat


def layer_errors(calibrated: bytes, clips: np.ndarray, dtype) -> dict[str, dict[str, float]]:
    """Per-tensor int8 error from the quantisation debugger, worst first.

    Args:
      calibrated: a float model with calibration statistics (`int8_quantization.calibrate`).
      clips: inputs in the model's input layout, without the batch axis.
      dtype: the model's input dtype (float32 for calibrated models).

    Returns:
      For each quantised op output: `rmse/scale` (root-mean-square error in units of its
      quantisation step; about 0.29 is pure rounding of a uniform error),
      `mean_squared_error` and `mean_abs_error`.
    """
    import tensorflow as tf

    debug_model = compat.mlir_quantize(calibrated, enable_numeric_verify=True)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_debug_metrics={"mean_abs_error": lambda diff: float(np.mean(np.abs(diff)))}
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model,
        debug_dataset=lambda: ([clip[None].astype(dtype)] for clip in clips),
        debug_options=options,
    )
    debugger.run()
    scales = compat.debugger_tensor_scales(debugger)
    rows = {}
    for name, stats in debugger.layer_statistics.items():
        scale = scales.get(name, 0.0)
        rows[name] = {
            "rmse/scale": float(np.sqrt(stats["mean_squared_error"]) / scale) if scale else 0.0,
            "mean_squared_error": float(stats["mean_squared_error"]),
            "mean_abs_error": float(stats["mean_abs_error"]),
        }
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["rmse/scale"]))
