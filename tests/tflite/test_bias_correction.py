"""Bias correction (`tflite/bias_correction.py`) and per-channel activation equalisation
(`tflite/activation_equalization.py`) of full int8.

On the suite's tiny discriminating SqueezeTime (`tiny`, conftest: width 0.25, 4 frames,
64 px), converted by the real TFLite converter and run by the real LiteRT interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def clips(tiny):
    return tiny.clips(16, seed=21)[0]


@pytest.fixture(scope="module")
def graphs(tiny, clips):
    """`(calibrated float graph, its full-int8 model with a uint8 input)`."""
    from keras_squeezetime.tflite.export import calibrated_model
    from keras_squeezetime.tflite.int8_quantization import quantize

    calibrated = calibrated_model(tiny.folded, clips)
    return calibrated, quantize(calibrated, input_type="uint8")


def _structure(model_bytes: bytes) -> list[tuple]:
    """Each op: its name and its inputs' / outputs' (type, shape): all but the numbers."""
    from keras_squeezetime.tflite import flatbuffer

    model = flatbuffer.read(model_bytes)
    tensors = model.subgraphs[0].tensors

    def describe(ids):
        return [(tensors[i].type, list(tensors[i].shape)) for i in ids if i >= 0]

    return [(name, describe(op.inputs), describe(op.outputs))
            for _, op, name in flatbuffer.operators(model)]


def _logits(float_graph: bytes, clips: np.ndarray) -> np.ndarray:
    from keras_squeezetime.tflite import flatbuffer
    from keras_squeezetime.tflite.bias_correction import tensor_values

    model = flatbuffer.read(float_graph)
    name = model.subgraphs[0].tensors[flatbuffer.signature_outputs(model)["logits"]].name.decode()
    return np.stack([values[name][0] for values in tensor_values(float_graph, clips, [name])])


def test_bias_correction_cancels_the_channel_mean_errors_and_keeps_the_int8_graph(graphs, clips):
    from keras_squeezetime.tflite.bias_correction import channel_errors, correct_biases

    calibrated, int8 = graphs
    clips = clips[:8]  # one interpreter pass per corrected op: the test's cost
    before = channel_errors(int8, calibrated, clips)
    corrected, summary = correct_biases(int8, calibrated, clips)
    after = channel_errors(corrected, calibrated, clips)
    assert summary["ops"] == len(before) > 20 and summary["channels_changed"] > 0
    # The stem convolution (the first op, no earlier correction to wait for) and nearly every
    # op downstream: what is left of each channel mean is a fraction of what there was
    # (bias steps round it, ReLU masks move a little with the corrected outputs).
    stem = next(iter(before))
    assert "stem_conv" in stem
    assert np.abs(after[stem]).mean() < 0.3 * np.abs(before[stem]).mean(), (before[stem],
                                                                            after[stem])
    sizeable = [n for n in before if np.abs(before[n]).mean() > 1e-3]
    shrunk = [n for n in sizeable if np.abs(after[n]).mean() < 0.5 * np.abs(before[n]).mean()]
    assert len(sizeable) > 10 and len(shrunk) >= 0.9 * len(sizeable), (len(shrunk), len(sizeable))
    assert summary["median_abs_error"][1] < 0.3 * summary["median_abs_error"][0]
    # Still the same full-int8 graph: same ops, tensor types and shapes; only bias values.
    assert _structure(corrected) == _structure(int8)


def test_equalization_keeps_the_float_function_and_evens_the_channels(graphs, clips):
    from keras_squeezetime.tflite import flatbuffer
    from keras_squeezetime.tflite.activation_equalization import equalize
    from keras_squeezetime.tflite.bias_correction import tensor_values
    from keras_squeezetime.tflite.int8_quantization import quantize

    calibrated, int8 = graphs
    equalized, summary = equalize(calibrated, clips)
    assert summary["groups"] > 10 and summary["max_scale"] > 2.0, summary
    reference = _logits(calibrated, clips)
    np.testing.assert_allclose(_logits(equalized, clips), reference,
                               atol=1e-4 * np.abs(reference).max())

    # Each convolution output's channels use more of the tensor's one int8 range.
    model = flatbuffer.read(calibrated)
    tensors = model.subgraphs[0].tensors
    convs = [tensors[op.outputs[0]].name.decode() for _, op, name in flatbuffer.operators(model)
             if name == "CONV_2D"]

    def used(graph: bytes) -> np.ndarray:
        peak = {name: 0.0 for name in convs}
        for values in tensor_values(graph, clips, convs):
            for name in convs:
                peak[name] = np.maximum(peak[name], np.abs(values[name]).max(0))
        return np.asarray([np.mean(p / p.max()) for p in peak.values()])

    before, after = used(calibrated), used(equalized)
    assert np.median(after) > 1.3 * np.median(before), (np.median(before), np.median(after))
    assert np.all(after > before - 0.05)

    # Quantised, the plain int8 graph: same ops, tensor types and shapes.
    assert _structure(quantize(equalized, input_type="uint8")) == _structure(int8)


def test_bias_correction_corrects_the_float_ops_of_a_hybrid_model(graphs, clips):
    """Ops kept float (`--float-layers`, hybrid int8 kernels) carry float biases: corrected by
    the measured channel means themselves, beside the int8 ops' int32 biases."""
    from keras_squeezetime.tflite import flatbuffer
    from keras_squeezetime.tflite.bias_correction import channel_errors, correct_biases
    from keras_squeezetime.tflite.export import finish_converted
    from keras_squeezetime.tflite.int8_quantization import quantize

    calibrated, _ = graphs
    clips = clips[:8]
    hybrid = finish_converted(quantize(calibrated, ["stage1"], "uint8"), True, "uint8")
    model = flatbuffer.read(hybrid)
    tensors = model.subgraphs[0].tensors
    float32 = flatbuffer.tensor_type("FLOAT32")
    float_ops = [tensors[op.outputs[0]].name.decode()
                 for _, op, name in flatbuffer.operators(model)
                 if name == "CONV_2D" and tensors[op.inputs[2]].type == float32]
    assert len(float_ops) >= 6 and all("stage1" in name for name in float_ops)
    before = channel_errors(hybrid, calibrated, clips)
    corrected, summary = correct_biases(hybrid, calibrated, clips)
    after = channel_errors(corrected, calibrated, clips)
    for group in (float_ops, [n for n in before if n not in float_ops]):
        sizeable = [n for n in group if np.abs(before[n]).mean() > 1e-3]
        shrunk = [n for n in sizeable if np.abs(after[n]).mean() < 0.5 * np.abs(before[n]).mean()]
        assert len(sizeable) >= 3 and len(shrunk) >= 0.8 * len(sizeable), (shrunk, sizeable)
    assert summary["ops"] == len(before)
    assert _structure(corrected) == _structure(hybrid)
