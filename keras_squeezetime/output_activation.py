"""What a classifier's output is: the activation of its last layer, read from the model.

One answer for every caller: prediction turns logits into a distribution and leaves a
sigmoid head's independent class probabilities as they are; evaluation averages
probabilities over views. A backbone without its head (pooled features) is refused here,
since its numbers are not class scores.
"""

from __future__ import annotations

import keras
import numpy as np

_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
            keras.layers.GlobalAveragePooling3D, keras.layers.GlobalMaxPooling3D)


def output_activation(model: keras.Model) -> str | None:
    """The name of the activation the model's output layer applies, e.g. `"softmax"`,
    `"sigmoid"` or `"linear"` (logits); None when the layer has none to read.

    Raises:
      ValueError: the output layer pools features (a backbone built with
        `include_top=False`).
    """
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    if isinstance(last, _POOLING):
        raise ValueError(
            f"{model.name}: its output is pooled features ({last.name!r}, "
            f"{tuple(model.output_shape)}), not class scores: a backbone without its head "
            "(include_top=False). Add a classifier on top of it.")
    activation = getattr(last, "activation", None)
    return None if activation is None else getattr(activation, "__name__", str(activation))


# What a classifier's outputs are, by its output activation (see `score_kind`).
PROBABILITIES, LOGITS, INDEPENDENT = "probabilities", "logits", "independent"


def score_kind(model: keras.Model) -> str:
    """`"probabilities"` (a softmax head), `"independent"` (a sigmoid head: one probability
    per class) or `"logits"` (any other activation, e.g. linear).

    Raises:
      ValueError: the output layer pools features (see `output_activation`).
    """
    return {"softmax": PROBABILITIES, "sigmoid": INDEPENDENT}.get(output_activation(model),
                                                                  LOGITS)


def to_probabilities(outputs: np.ndarray, kind: str) -> np.ndarray:
    """Class probabilities of outputs `(N, classes)` of kind `kind` (see `score_kind`):
    logits go through a softmax, probabilities and independent scores stay as they are."""
    if kind not in (PROBABILITIES, LOGITS, INDEPENDENT):
        raise ValueError(f"kind must be one of {PROBABILITIES!r}, {LOGITS!r}, {INDEPENDENT!r}; "
                         f"got {kind!r}.")
    outputs = np.asarray(outputs, dtype=np.float64)
    if kind == LOGITS:
        outputs = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        outputs /= outputs.sum(axis=-1, keepdims=True)
    return outputs
