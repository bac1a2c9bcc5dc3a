"""Will a GPU take this graph? Three checks, from cheapest to the real thing.

1. `analyzer_report` / `analyzer_finds_gpu_compatible`: TensorFlow's model analyzer
   (`tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`). Caution: in
   the TF 2.21 and ai-edge-litert 2.3 wheels its GPU check passes every graph we tried
   (a rank-5 TRANSPOSE, CONV_3D, CUMSUM, even a Flex op): a necessary check, not a
   sufficient one.
2. `max_tensor_rank`: LiteRT's GPU accelerator takes no tensor of rank above 4 (the
   reason the `stacked` input layout exists).
3. `gpu_accelerator_check`: compile the file for LiteRT's GPU accelerator alone (no CPU
   fallback) through `CompiledModel`, run a clip and compare with the interpreter. It
   needs a GPU device: on a desktop without one, the accelerator's WebGPU backend also
   runs on a software Vulkan driver (Mesa's lavapipe, Debian package
   `mesa-vulkan-drivers` >= 24), which is how it is tested here. It runs in a
   subprocess, since a failed GPU environment cannot be retried in the same process,
   and reports the ops the accelerator refused, as it logs them. (It must: with
   TensorFlow loaded in the same process the GPU accelerator crashes.)

`python -m keras_squeezetime.tflite.gpu_compatibility model.tflite` prints check 3 as JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np

_COMPATIBLE = "looks compatible with GPU delegate"
_WARNING = "GPU COMPATIBILITY WARNING"
# What LiteRT logs when the GPU accelerator has no device or driver.
_NO_DEVICE = ("No adapters found", "Failed to initialize WebGPU environment",
              "GPU accelerator could not be loaded", "Couldn't load Vulkan")


def analyzer_report(model_bytes: bytes) -> str:
    """TensorFlow's model analyzer output for `model_bytes`, with its GPU check."""
    import tensorflow as tf

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        tf.lite.experimental.Analyzer.analyze(model_content=model_bytes, gpu_compatibility=True)
    return text.getvalue()


def analyzer_finds_gpu_compatible(report: str) -> bool:
    """True when an analyzer report declares the model GPU-compatible and warns of nothing."""
    return _COMPATIBLE in report and _WARNING not in report


def analyzer_warnings(report: str) -> list[str]:
    """The analyzer's GPU compatibility warnings, one per line."""
    return [line.split(_WARNING + ":", 1)[1].strip() for line in report.splitlines()
            if _WARNING + ":" in line]


def max_tensor_rank(model_bytes: bytes) -> int:
    """The largest rank of any tensor of the model (LiteRT's GPU accelerator takes <= 4)."""
    from keras_squeezetime.tflite.model_ops import max_tensor_rank as rank

    return rank(model_bytes)


# Runs in a bare process: with TensorFlow loaded (as `import keras_squeezetime` does), the
# GPU accelerator crashes (two LiteRT runtimes in one process). Reads the model input
# from an .npy file, writes the outputs to an .npz, prints a JSON line.
_PROBE_TIMEOUT_S = 600  # compiling for a GPU takes seconds; a hung driver, forever

_GPU_PROBE = """
import json, sys
import numpy as np
from ai_edge_litert import compiled_model as m
path, x_path, out_path, fp32 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
options = m.Options(m.HardwareAccelerator.GPU, gpu_options=m.GpuOptions(enforce_f32=fp32))
try:
    model = m.CompiledModel.from_file(path, options=options)
except RuntimeError as error:
    print(json.dumps({"compiled": False, "error": str(error).strip().splitlines()[-1]}))
    sys.exit(0)
index = model.get_signature_index("serving_default")
names = model.get_signature_list()["serving_default"]["outputs"]
details = model.get_output_tensor_details("serving_default")
inputs, outputs = model.create_input_buffers(index), model.create_output_buffers(index)
inputs[0].write(np.load(x_path))
model.run_by_index(index, inputs, outputs)
np.savez(out_path, **{name: buffer.read(int(np.prod(details[name]["shape"])),
                                        np.dtype(details[name]["dtype"]))
                      for name, buffer in zip(names, outputs)})
print(json.dumps({"compiled": True, "fully_accelerated": bool(model.is_fully_accelerated())}))
"""


def gpu_accelerator_check(path: str | os.PathLike, fp32: bool = True, seed: int = 0) -> dict:
    """Compiles `path` for LiteRT's GPU accelerator alone and runs one random clip.

    Args:
      path: a `.tflite` from `squeezetime-export`.
      fp32: compute in fp32 (`GpuOptions(enforce_f32=True)`), so the outputs can be
        compared tightly with the interpreter's; False runs the accelerator's default
        (fp16 on most phones).
      seed: of the random pixel clip.

    Returns:
      `{"device": bool, "compiled": bool, "fully_accelerated": bool, "unsupported_ops":
      [...], "max_abs_error": float, "max_abs_output": float, "error": str or None}`;
      `device` is False when no GPU (or software Vulkan) device exists here, and then
      nothing else is known (`error` says so, with LiteRT's reason). `unsupported_ops`
      are the accelerator's own lines ("RESHAPE: Tensor dimensions must be less than 5.
      ..."); `max_abs_error` compares the outputs with the interpreter's (logits when
      exported, else probabilities).
    """
    import tempfile

    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from keras_squeezetime.tflite.signature import LOGITS_NAME, OUTPUT_NAME
    from keras_squeezetime.tflite.tensor_quantization import dequantize_output

    model = LiteRTModel(path, threads=1)
    clip = np.random.default_rng(seed).integers(0, 256, model.clip_shape).astype(np.float32)
    expected = model.run(clip)
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # Mesa's Vulkan loader asks
    with tempfile.TemporaryDirectory() as folder:
        x_path, out_path = os.path.join(folder, "x.npy"), os.path.join(folder, "out.npz")
        np.save(x_path, model.model_input(clip))
        try:
            child = subprocess.run(
                [sys.executable, "-c", _GPU_PROBE, os.fspath(path), x_path, out_path,
                 "1" if fp32 else "0"], capture_output=True, text=True, env=env,
                timeout=_PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired as expired:
            # A GPU driver that hangs must not hang the harness with it.
            child = subprocess.CompletedProcess(
                expired.cmd, -1, "", f"Error: the GPU probe did not finish in {_PROBE_TIMEOUT_S} s")
        result = _parse_child(child.stdout) or {
            "compiled": False, "error": _last_error(child.stderr, child.returncode)}
        if result.get("compiled"):
            with np.load(out_path) as outputs:
                name = LOGITS_NAME if LOGITS_NAME in expected else OUTPUT_NAME
                detail = model.output_details[name]
                got = dequantize_output(outputs[name].reshape(detail["shape"]), detail)[0]
            result["max_abs_error"] = float(np.max(np.abs(got - expected[name])))
            result["max_abs_output"] = float(np.max(np.abs(expected[name])))
    result.setdefault("error", None)
    result["unsupported_ops"] = _unsupported_ops(child.stderr)
    result["device"] = not any(marker in child.stderr for marker in _NO_DEVICE)
    if not result["device"]:
        result["compiled"] = False
        # The compile error itself is a bare source location; the reason is in the log.
        result["error"] = no_device_error(child.stderr)
    return result


def no_device_error(stderr: str) -> str:
    """The `error` of a check that found no GPU device: that, and LiteRT's own reason."""
    lines = stderr.splitlines()
    # The line of the most specific marker ("No adapters found" first).
    reason = next((line for marker in _NO_DEVICE for line in lines if marker in line), "")
    # "ERROR: [delegate_webgpu.cc:359] Failed to ..." -> "Failed to ...".
    reason = re.sub(r"^(?:\w+:\s*)?(?:\[[^\]]*\]\s*)?", "", reason.strip())
    return ("no GPU accelerator available: LiteRT found no GPU or Vulkan device"
            + (f" ({reason})" if reason else ""))


def _parse_child(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def _unsupported_ops(stderr: str) -> list[str]:
    """The lines after the GPU delegate's "not supported" header, up to its summary line."""
    lines, found = stderr.splitlines(), []
    for i, line in enumerate(lines):
        if "operations are not supported by GPU delegate" in line:
            for following in lines[i + 1:]:
                if (re.match(r"^\d+ operations will run on the GPU", following)
                        or not following.strip()):
                    break
                found.append(following.strip())
    return found


def _last_error(stderr: str, code: int) -> str:
    errors = [line.strip() for line in stderr.splitlines()
              if "ERROR" in line or "not accelerated" in line or "Error" in line]
    return (errors[-1] if errors else "no message") + f" (exit code {code})"


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=gpu_accelerator_check.__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fp16", action="store_true", help="The accelerator's default precision.")
    args = parser.parse_args(argv)
    print(json.dumps(gpu_accelerator_check(args.model, not args.fp16, args.seed)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
