"""The same `.tflite` through LiteRT's `CompiledModel` API, the one Android apps use now.

`ai_edge_litert.compiled_model.CompiledModel` compiles a model for a set of accelerators
(CPU: XNNPACK; GPU: LiteRT's GPU accelerator) and runs it on tensor buffers: the Python
twin of the Kotlin `CompiledModel` of `com.google.ai.edge.litert`. The harness runs every
file through it and reports how far its outputs are from the interpreter's.

CPU options reach XNNPACK: `force_fp16=True` passes its FORCE_FP16 flag, which computes
every float operator in fp16 whatever the file allows: the way to measure on a desktop
what fp16 arithmetic does to a model on a phone. On CPUs with fp16 vector arithmetic (x86
with AVX512-FP16, ARMv8.2-A and later) products accumulate in fp16 as on a phone; on
others (AMD EPYC, older Intel) XNNPACK emulates it, every tensor rounded to fp16 but sums
accumulated in fp32, a little closer to float32 than a phone: `cpu_has_fp16_arithmetic`
tells which.
"""

from __future__ import annotations

import numpy as np

from keras_squeezetime.tflite import compat
from keras_squeezetime.tflite.interpreter import LiteRTModel, output_scores
from keras_squeezetime.tflite.signature import SIGNATURE_KEY
from keras_squeezetime.tflite.tensor_quantization import dequantize_output

ACCELERATORS = ("cpu", "gpu")

# /proc/cpuinfo flags of the fp16 vector arithmetic XNNPACK has kernels for.
_FP16_FLAGS = {"avx512_fp16", "asimdhp"}


def cpu_has_fp16_arithmetic() -> bool:
    """Whether XNNPACK accumulates in fp16 on this CPU under `force_fp16` (else it emulates).

    Read from the Linux CPU flags (AVX512-FP16 on x86, the ARMv8.2-A half-precision
    extension `asimdhp` on ARM); Apple silicon has it too. False where neither tells.
    """
    import platform

    if platform.system() == "Darwin":
        return platform.machine() == "arm64"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return any(_FP16_FLAGS.intersection(line.split())
                       for line in handle if line.startswith(("flags", "Features")))
    except OSError:
        return False


class CompiledModelRunner:
    """A LiteRT model compiled by `CompiledModel`, fed pixel clips like `LiteRTModel`.

    Args:
      model: the file opened by the interpreter runner (its input layout, dtype and
        quantisation parameters are reused, so both runners see the same input bytes).
      accelerator: "cpu" (XNNPACK) or "gpu" (LiteRT's GPU accelerator; every op must run
        on it: no CPU fallback, so a graph it does not take fails to compile).
      force_fp16: CPU only: XNNPACK computes float ops in fp16 (see the module doc).
      gpu_fp32: GPU only: compute in fp32 instead of the accelerator's default fp16.

    Raises:
      RuntimeError: the model does not compile for the accelerator, or the accelerator
        has no device here (LiteRT logs the reason on stderr; `gpu_compatibility`
        runs the GPU in a subprocess and reports it).
    """

    def __init__(self, model: LiteRTModel, accelerator: str = "cpu", force_fp16: bool = False,
                 gpu_fp32: bool = False):
        from ai_edge_litert import compiled_model as litert

        if accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator must be one of {ACCELERATORS}; got {accelerator!r}.")
        if force_fp16 and accelerator != "cpu":
            raise ValueError("force_fp16 is an XNNPACK (cpu) option.")
        self.model, self.accelerator = model, accelerator
        if accelerator == "cpu":
            options = litert.Options(
                litert.HardwareAccelerator.CPU,
                cpu_options=litert.CpuOptions(
                    num_threads=model.threads,
                    xnnpack_flags=compat.XNNPACK_FLAG_FORCE_FP16 if force_fp16 else None))
        else:
            options = litert.Options(litert.HardwareAccelerator.GPU,
                                     gpu_options=litert.GpuOptions(enforce_f32=gpu_fp32))
        self.compiled = litert.CompiledModel.from_file(model.path, options=options)
        self.fully_accelerated = bool(self.compiled.is_fully_accelerated())
        signature = self.compiled.get_signature_list()[SIGNATURE_KEY]
        self.input_names, self.output_names = signature["inputs"], signature["outputs"]
        index = self.compiled.get_signature_index(SIGNATURE_KEY)
        self.inputs = self.compiled.create_input_buffers(index)
        self.outputs = self.compiled.create_output_buffers(index)
        self.signature_index = index

    def run(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        """Float outputs of one pixel clip `(T, S, S, 3)`, as `LiteRTModel.run` gives them."""
        self.inputs[0].write(self.model.model_input(clip))
        self.compiled.run_by_index(self.signature_index, self.inputs, self.outputs)
        results = {}
        for name, buffer in zip(self.output_names, self.outputs):
            detail = self.model.output_details[name]
            size = int(np.prod(detail["shape"]))
            raw = buffer.read(size, np.dtype(detail["dtype"])).reshape(detail["shape"])
            results[name] = dequantize_output(raw, detail)[0]
        return results

    def time_run(self, clip: np.ndarray) -> float:
        """Seconds of one run, the input written once beforehand (an app reuses its buffer)."""
        import time

        if getattr(self, "_timed", None) is not clip:
            self.inputs[0].write(self.model.model_input(clip))
            self._timed = clip
        start = time.perf_counter()
        self.compiled.run_by_index(self.signature_index, self.inputs, self.outputs)
        return time.perf_counter() - start

    def scores(self, clips: np.ndarray) -> np.ndarray:
        """Logits `(N, classes)` of clips, as `LiteRTModel.scores`."""
        return np.stack([output_scores(self.run(clip)) for clip in clips])

    def close(self) -> None:
        self.compiled.close()
