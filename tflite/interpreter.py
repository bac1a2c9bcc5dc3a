"""The LiteRT runner: an exported model in the interpreter, fed pixel clips whatever its input.

`LiteRTModel(path, threads).run(clip)` takes a `(T, S, S, 3)` clip of pixels in [0, 255]
and returns float outputs, whatever the file's input layout (`frames` or `stacked`, from
its metadata or its input rank), input dtype (float32, or uint8 quantised with scale 1)
and output dtype. The interpreter is `ai_edge_litert.interpreter.Interpreter` with its
default op resolver, which applies the XNNPACK delegate (float and int8 kernels) as on a
phone.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from keras_squeezetime.tflite import compat, input_layout, metadata
from keras_squeezetime.tflite.signature import INPUT_NAME, LOGITS_NAME, OUTPUT_NAME, SIGNATURE_KEY
from keras_squeezetime.tflite.tensor_quantization import dequantize_output, quantize_input

_FLATBUFFER_ID = b"TFL3"


class NotTFLiteError(ValueError):
    """The file is not a LiteRT (TFLite) flatbuffer."""


def check_tflite_file(path: str | os.PathLike) -> None:
    """Raises unless `path` is an existing LiteRT flatbuffer (file identifier `TFL3`)."""
    path = os.fspath(path)
    if os.path.isdir(path):  # "does not exist" would mislead: it exists, as a folder
        raise NotTFLiteError(f"{path} is a folder, not a model file; --model takes .tflite "
                             "files (repeat it for several).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != _FLATBUFFER_ID:
        raise NotTFLiteError(
            f"{path} is not a LiteRT/TFLite model (no 'TFL3' flatbuffer identifier); "
            "export one with squeezetime-export."
        )


class LiteRTModel:
    """An exported SqueezeTime model behind its `serving_default` signature.

    Args:
      path: the `.tflite` file.
      threads: interpreter threads (XNNPACK uses them too).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        check_tflite_file(path)
        self.path = os.fspath(path)
        self.threads = int(threads)
        self.interpreter = Interpreter(model_path=self.path, num_threads=self.threads)
        self.interpreter.allocate_tensors()  # applies XNNPACK, so `delegation()` can see it
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise ValueError(
                f"{self.path} has no '{SIGNATURE_KEY}' signature (has {sorted(signatures)}); "
                "export it with squeezetime-export."
            )
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        inputs = self.runner.get_input_details()
        if INPUT_NAME not in inputs:
            raise ValueError(
                f"{self.path}: signature input '{INPUT_NAME}' missing; has {sorted(inputs)}."
            )
        self.input_detail = inputs[INPUT_NAME]
        self.output_details = self.runner.get_output_details()
        with open(self.path, "rb") as handle:
            self.labels, self.config = metadata.read_metadata(handle.read())
        self.input_layout = self.config.get(
            "input_layout", input_layout.layout_of_shape(self.input_tensor_shape))
        self._timed: tuple = (None, None)  # (clip, its converted input) for time_invoke

    @property
    def input_tensor_shape(self) -> tuple[int, ...]:
        """The input tensor: `(1, T, S, S, 3)`, or `(1, S, S, 3T)` in the stacked layout."""
        return tuple(int(d) for d in self.input_detail["shape"])

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """`(T, S, S, 3)`: the pixel clip `run` takes."""
        return input_layout.clip_shape(self.input_tensor_shape, self.input_layout)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """`(1, T, S, S, 3)`: the clip `run` takes, with its batch axis, whatever the layout."""
        return (1, *self.clip_shape)

    @property
    def num_classes(self) -> int:
        """Classes of the `probabilities` output."""
        return int(self.output_details[OUTPUT_NAME]["shape"][-1])

    def model_config(self):
        """The `ModelConfig` of the model in this file, by `ModelConfig`'s precedence rule.

        `config.json` beside the file (if any) < the clip settings embedded at export <
        what the file fixes: its frames and image size, its class count, and the class
        names embedded in it.
        """
        from keras_squeezetime.model_config import ModelConfig, read_model_config

        base = read_model_config(self.path) or ModelConfig()
        recorded = {key: self.config[key]
                    for key in ("frames", "frame_interval", "image_size", "short_side")
                    if self.config.get(key)}
        frames, size = self.clip_shape[0], self.clip_shape[1]
        if "short_side" in recorded:  # embedded for this file's crop size, not config.json's
            recorded.setdefault("image_size", size)
        config = base.replace(**recorded).fixed_by_model(frames=frames, image_size=size)
        names = self.labels or config.class_names
        if names is not None and len(names) != self.num_classes:
            raise ValueError(f"{self.path}: {len(names)} class names for {self.num_classes} "
                             "outputs.")
        return config.replace(num_classes=self.num_classes,
                              class_names=tuple(names) if names is not None else None)

    @property
    def independent_scores(self) -> bool:
        """Whether `probabilities` are a sigmoid head's, one independent probability per
        class, rather than a distribution (recorded at export; older files: softmax)."""
        return self.config.get("output_activation") == "sigmoid"

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's dtype: float32, or uint8 for files taking pixels as bytes."""
        return np.dtype(self.input_detail["dtype"])

    def check_clip_shape(self, shape: Sequence[int]) -> None:
        """Raises naming both shapes when a clip `(T, S, S, 3)` does not fit the model."""
        if tuple(shape) != self.clip_shape:
            raise ValueError(
                f"Clips of shape {tuple(shape)} do not match the input {self.clip_shape} of "
                f"{self.path} (frames, height, width, channels); sample clips at its size."
            )

    def model_input(self, clip: np.ndarray) -> np.ndarray:
        """A pixel clip `(T, S, S, 3)` as this file's input tensor (layout, batch, dtype)."""
        self.check_clip_shape(clip.shape)
        packed = input_layout.pack(np.asarray(clip)[None], self.input_layout)
        return quantize_input(packed, self.input_detail)

    def run(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        """Float outputs (`probabilities`, `logits` when exported) of one pixel clip
        `(T, S, S, 3)`."""
        outputs = self.runner(**{INPUT_NAME: self.model_input(clip)})
        return {
            name: dequantize_output(value, self.output_details[name])[0]
            for name, value in outputs.items()
        }

    def scores(self, clips: np.ndarray) -> np.ndarray:
        """Logits `(N, classes)` of clips, or log-probabilities when no logits were exported."""
        return np.stack([output_scores(self.run(clip)) for clip in clips])

    def time_invoke(self, clip: np.ndarray) -> float:
        """Seconds of one invocation (input copy included, as an app pays it).

        The clip is converted to the input dtype once and reused while the same array is
        passed, as an app reuses its input buffer: a freshly allocated input every call
        made uint8 runs measure up to 2 ms slower than float ones on a 16x224x224 clip.
        """
        if self._timed[0] is not clip:
            self._timed = (clip, self.model_input(clip))
        x = self._timed[1]
        start = time.perf_counter()
        self.runner(**{INPUT_NAME: x})
        return time.perf_counter() - start

    def delegation(self) -> dict[str, object]:
        """How XNNPACK took the graph: `{"partitions": n, "ops_outside": {op: count}}`.

        Ops outside the delegate run in LiteRT's own kernels and split the graph into
        partitions, each boundary a sync point; XNNPACK refuses, for example, an int8 ADD
        whose input/output scales are more than 2**10 apart. The interpreter does not list
        its execution plan, so the ops outside are found from the delegate nodes' inputs:
        a delegate input (or model output) made by a node and not by a delegate comes from
        an undelegated node, and so do that node's own such inputs.
        """
        ops = compat.ops_details(self.interpreter)
        delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
        producer = {t: op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
        delegated_outputs = {t for op in delegates for t in op["outputs"]}
        outputs = [d["index"] for d in self.interpreter.get_output_details()]
        pending = [t for op in delegates for t in op["inputs"]] + outputs
        outside, seen = {}, set()
        while pending:
            tensor = pending.pop()
            if tensor in seen or tensor in delegated_outputs or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            outside[node["index"]] = node["op_name"]
            pending.extend(node["inputs"])
        counts: dict[str, int] = {}
        for name in outside.values():
            counts[name] = counts.get(name, 0) + 1
        return {"partitions": len(delegates), "ops_outside": dict(sorted(counts.items()))}

    def op_counts(self) -> dict[str, int]:
        """`{op name: count}` of the model's execution plan."""
        counts: dict[str, int] = {}
        for op in compat.ops_details(self.interpreter):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        return dict(sorted(counts.items()))


def output_scores(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The logits of one run's outputs, or log-probabilities when no logits were exported."""
    if LOGITS_NAME in outputs:
        return outputs[LOGITS_NAME]
    return np.log(outputs[OUTPUT_NAME] + 1e-12)
