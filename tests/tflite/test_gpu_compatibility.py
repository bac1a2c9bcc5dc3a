"""The stacked float graph is one LiteRT's GPU accelerator takes; the frames graph is not.

The analyzer check runs everywhere. The GPU accelerator itself runs where it finds a
device: a GPU, or Mesa's software Vulkan driver (`apt-get install mesa-vulkan-drivers`,
version 24 or later); elsewhere that test is skipped, saying so.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def float_exports(tiny, tmp_path_factory):
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("gpu")
    return {layout: export_tflite(tiny.folded, folder / f"{layout}.tflite", "float32",
                                  input_layout=layout).path
            for layout in ("frames", "stacked")}


def test_analyzer_finds_the_stacked_float_graph_gpu_compatible(float_exports):
    from keras_squeezetime.tflite import gpu_compatibility

    with open(float_exports["stacked"], "rb") as handle:
        model_bytes = handle.read()
    report = gpu_compatibility.analyzer_report(model_bytes)
    assert "Op#0" in report and "Subgraph#0" in report  # a full analysis, not an error
    assert gpu_compatibility.analyzer_finds_gpu_compatible(report), report[-2000:]
    assert gpu_compatibility.analyzer_warnings(report) == []
    assert gpu_compatibility.max_tensor_rank(model_bytes) == 4
    with open(float_exports["frames"], "rb") as handle:
        assert gpu_compatibility.max_tensor_rank(handle.read()) == 5


def test_analyzer_report_parsing_sees_warnings():
    """The analyzer's warning format (TF's analyzer tests), so the parser can say no."""
    from keras_squeezetime.tflite import gpu_compatibility

    report = (
        "Subgraph#0 main(T#0) -> [T#2]\n  Op#0 FlexAddV2(T#0, T#1) -> [T#2]\n"
        "GPU COMPATIBILITY WARNING: Not supported custom op FlexAddV2\n"
        "\nGPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at "
        "nodes 0 with TFLite runtime version 2.21.0\n")
    assert not gpu_compatibility.analyzer_finds_gpu_compatible(report)
    assert gpu_compatibility.analyzer_warnings(report)[0] == "Not supported custom op FlexAddV2"
    assert not gpu_compatibility.analyzer_finds_gpu_compatible("no verdict at all")


def test_gpu_accelerator_takes_the_stacked_graph_whole(float_exports):
    from keras_squeezetime.tflite.gpu_compatibility import gpu_accelerator_check

    stacked = gpu_accelerator_check(float_exports["stacked"])
    if not stacked["device"]:
        pytest.skip("LiteRT's GPU accelerator finds no device here (no GPU, no Vulkan driver)")
    assert stacked["compiled"] and stacked["fully_accelerated"], stacked
    assert stacked["unsupported_ops"] == []
    # fp32 on the GPU: the interpreter's logits to float rounding (measured 9e-6 of ~5).
    assert stacked["max_abs_error"] <= 1e-4 * max(1.0, stacked["max_abs_output"]), stacked
    frames = gpu_accelerator_check(float_exports["frames"])
    assert not frames["compiled"], frames
    assert any(op.startswith("RESHAPE: Tensor dimensions must be less than 5")
               for op in frames["unsupported_ops"]), frames


def test_no_device_error_says_so_with_litert_reason():
    """LiteRT's log on a machine without GPU or Vulkan driver (ai-edge-litert 2.3): the
    compile error is a bare source location, the reason is in these lines."""
    from keras_squeezetime.tflite.gpu_compatibility import no_device_error

    stderr = (
        "INFO: [delegate_webgpu.cc:342] Create WebGPU environment (use_low_power=0)\n"
        "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file\n"
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: "
        "No adapters found\n"
        "E0000 00:00:1796643491.086152   22651 delegate_webgpu.cc:736] Failed to get or create "
        "delegate WebGPU environment: INTERNAL: Failed to initialize WebGPU environment\n")
    assert no_device_error(stderr) == (
        "no GPU accelerator available: LiteRT found no GPU or Vulkan device (Failed to "
        "initialize WebGPU environment: INTERNAL: No adapters found)")
    assert no_device_error("") == (
        "no GPU accelerator available: LiteRT found no GPU or Vulkan device")


def test_without_a_device_the_stored_error_says_no_gpu(float_exports):
    """What `squeezetime-eval-tflite --gpu` stores on a machine without a GPU device."""
    from keras_squeezetime.tflite.gpu_compatibility import gpu_accelerator_check
    from keras_squeezetime.tflite.report import gpu_status

    check = gpu_accelerator_check(float_exports["stacked"])
    if check["device"]:
        pytest.skip("LiteRT's GPU accelerator finds a device here")
    assert not check["compiled"]
    assert check["error"].startswith(
        "no GPU accelerator available: LiteRT found no GPU or Vulkan device"), check
    assert gpu_status(check) == "no device"


def test_a_probe_that_does_not_finish_is_reported_not_waited_for(float_exports, monkeypatch):
    """A GPU driver that hangs: the check reports it after its timeout (here 10 ms)."""
    from keras_squeezetime.tflite import gpu_compatibility

    monkeypatch.setattr(gpu_compatibility, "_PROBE_TIMEOUT_S", 0.01)
    result = gpu_compatibility.gpu_accelerator_check(float_exports["stacked"])
    assert not result["compiled"], result
    assert result["error"].startswith("Error: the GPU probe did not finish in 0.01 s"), result
