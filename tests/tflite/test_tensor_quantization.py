"""Float values to a tensor's dtype and back, with its scale and zero point."""

from __future__ import annotations

import numpy as np


def test_quantize_input_rounds_shifts_and_clips():
    from keras_squeezetime.tflite.tensor_quantization import quantize_input

    x = np.array([0.0, 1.4, 1.6, 255.0, 300.0, -7.0], np.float32)
    # uint8, scale 1, zero point 0: the pixel values themselves, clipped to 0..255.
    got = quantize_input(x, {"dtype": np.uint8, "quantization": (1.0, 0)})
    assert got.dtype == np.uint8 and got.tolist() == [0, 1, 2, 255, 255, 0]
    # int8, scale 2, zero point -128: x / 2 - 128, rounded half to even, clipped.
    got = quantize_input(x, {"dtype": np.int8, "quantization": (2.0, -128)})
    assert got.tolist() == [-128, -127, -127, 0, 22, -128]  # 255 / 2 - 128 = -0.5 -> 0
    # Float inputs are cast, not quantised.
    assert quantize_input(x, {"dtype": np.float32}).tolist() == x.tolist()


def test_dequantize_output():
    from keras_squeezetime.tflite.tensor_quantization import dequantize_output

    y = np.array([-128, 0, 5, 127], np.int8)
    got = dequantize_output(y, {"dtype": np.int8, "quantization": (0.5, -3)})
    assert got.dtype == np.float32 and got.tolist() == [-62.5, 1.5, 4.0, 65.0]
    floats = np.array([0.25], np.float32)
    assert dequantize_output(floats, {"dtype": np.float32, "quantization": (0.0, 0)}) == 0.25


def test_only_quantised_integer_outputs_are_rescaled():
    """An integer output without a scale (e.g. class indices) and a float one are cast."""
    from keras_squeezetime.tflite.tensor_quantization import dequantize_output

    indices = np.array([3, 0, 7], np.int32)
    got = dequantize_output(indices, {"dtype": np.int32, "quantization": (0.0, 0)})
    assert got.dtype == np.float32 and got.tolist() == [3.0, 0.0, 7.0]
    floats = np.array([1.5, -2.0], np.float32)
    # A float tensor keeps its values even if quantisation parameters are attached to it.
    assert dequantize_output(floats, {"dtype": np.float32, "quantization": (0.5, 3)}).tolist() \
        == [1.5, -2.0]
