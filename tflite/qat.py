"""Quantisation-aware fine-tuning of the graph an int8 export quantises.

Post-training int8 rounds every activation of the BN-folded graph to 256 levels; on a model
whose clips sit near its decision boundary the small errors of ~300 ops add up and flip
top-1 decisions. Fine-tuning with the rounding in the loop lets the weights absorb some of
it. What is trained is the calibrated float graph itself, as `simulated_int8.QuantizedGraph`
(fake quantisation of weights and activations with `keras.quantizers` ops). Only the
weights move, with the ranges held at their calibrated values; the student learns to match
the float graph's logits (distillation: no labels, the float model is the reference), on
the calibration clips and their flips and time reversals. Afterwards the weights are
written back into the calibrated graph, whose ranges are those training saw, and the
quantiser makes the int8 model from it as from any calibration: same ops, size and speed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import numpy as np

from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph, write_weights

logger = logging.getLogger(__name__)


def augment(clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each clip flipped left-right, upside down and played backwards, each with p 0.5.

    Labels do not matter here (the float graph gives the targets), so any transform that
    keeps clips looking like clips widens what the weights are tuned on.
    """
    out = clips.copy()
    for i in range(len(out)):
        if rng.random() < 0.5:
            out[i] = out[i][:, :, ::-1]
        if rng.random() < 0.5:
            out[i] = out[i][:, ::-1]
        if rng.random() < 0.5:
            out[i] = out[i][::-1]
    return out


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    """What `fine_tune` returns.

    Attributes:
      calibrated: the calibrated graph with the fine-tuned weights (quantise it like any).
      epochs_run: epochs trained.
      best_epoch: the epoch whose weights were kept (0: the original weights).
      history: per epoch, `loss` (train, logits MSE) and `held_out_agreement` /
        `held_out_mse` of the simulated int8 graph on the held-out clips.
    """

    calibrated: bytes
    epochs_run: int
    best_epoch: int
    history: tuple[dict, ...]


def fine_tune(
    calibrated: bytes,
    clips: np.ndarray,
    held_out: np.ndarray,
    epochs: int = 6,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> FineTuneResult:
    """Quantisation-aware fine-tuning of `calibrated` towards its own float logits.

    Args:
      calibrated: a calibrated float model (`export.calibrated_model`) whose input takes
        pixel clips and whose signature has a `logits` output.
      clips: `(N, T, S, S, 3)` pixels for training (the calibration clips).
      held_out: clips not in `clips`; the epoch whose simulated int8 logits agree best with
        float on them (top-1 agreement, then logit MSE) is kept.
      epochs: passes over `clips`, each freshly augmented.
      batch_size, learning_rate, seed: of the Adam fine-tuning.
      log: progress lines (default: this module's logger).

    Returns:
      A `FineTuneResult`.
    """
    import keras

    log = log or logger.info
    spec = read_graph(calibrated)
    keras.utils.set_random_seed(seed)
    graph = quantized_graph_class()
    layer, fixed = graph(spec), graph(spec)  # the student, and the float graph it learns
    clip_shape = tuple(clips.shape[1:])
    inputs = keras.Input(clip_shape)
    student = keras.Model(inputs, layer(inputs, quantize=True))
    teacher = keras.Model(inputs, fixed(inputs, quantize=False))
    student.compile(keras.optimizers.Adam(learning_rate), loss="mse")
    rng = np.random.default_rng(seed)

    def predict(model, x):
        return model.predict(x.astype(np.float32), batch_size=16, verbose=0)

    reference = predict(teacher, held_out)

    def held_out_scores():
        simulated = predict(student, held_out)
        return (float(np.mean(simulated.argmax(1) == reference.argmax(1))),
                float(np.mean((simulated - reference) ** 2)))

    agreement, mse = held_out_scores()
    history = [{"epoch": 0, "held_out_agreement": agreement, "held_out_mse": mse}]
    log(f"qat: epoch 0: simulated int8 agrees with float on {agreement:.4f} of "
        f"{len(held_out)} held-out clips (logit MSE {mse:.4g})")
    best = (agreement, -mse, 0, layer.weights_by_tensor())
    started = time.monotonic()
    for epoch in range(1, epochs + 1):
        x = augment(clips, rng).astype(np.float32)
        targets = predict(teacher, x)
        fit = student.fit(x, targets, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        agreement, mse = held_out_scores()
        loss = float(fit.history["loss"][-1])
        history.append({"epoch": epoch, "loss": loss, "held_out_agreement": agreement,
                        "held_out_mse": mse})
        elapsed = time.monotonic() - started
        log(f"qat: epoch {epoch}/{epochs}: train logit MSE {loss:.4g}; held-out agreement "
            f"{agreement:.4f}, logit MSE {mse:.4g} ({elapsed / epoch:.0f} s/epoch, "
            f"ETA {elapsed / epoch * (epochs - epoch):.0f} s)")
        if (agreement, -mse) > best[:2]:
            best = (agreement, -mse, epoch, layer.weights_by_tensor())
    return FineTuneResult(write_weights(calibrated, best[3]), epochs, best[2], tuple(history))
