"""int8 export that reaches a target top-1 agreement with float on held-out clips.

`squeezetime-export --quantization int8 --target-agreement 0.98`: the user names the
agreement, this module finds the cheapest int8 model that reaches it, measured by the real
LiteRT interpreter on clips that took no part in calibration. In order, stopping as soon as
the target is met:

1. Full int8 with the calibrated (min/max) activation ranges, and with MSE ranges
   (`activation_ranges`: outliers clipped, ordinary values rounded finer); the better of
   the two on the held-out clips is kept.
2. Full int8 after per-channel activation equalisation (`activation_equalization`), with
   MSE ranges. Same graph, size and speed as step 1, but equalising runs the float graph
   twice over the calibration clips keeping every tensor (reference kernels), so only
   when step 1 misses the target. (Bias correction, `bias_correction`, is not a step: on
   the models of BENCHMARKS.md its effect on agreement was within the noise of which
   clips it was measured on, at one interpreter pass per corrected op.)
3. Keeping the fewest units float, where a unit is the stem, one CTL block or the head, on
   the best calibration of steps 1-2: units are ranked by how much of the int8 logit error
   they cause (simulated on the calibration clips, `simulated_int8`), then the smallest
   ranked prefix reaching the target is found by doubling and bisection, each candidate
   converted and measured. Units kept float keep int8 convolution kernels (hybrid ops,
   see `hybrid_fallback`), so the file stays int8-sized and XNNPACK runs it, somewhat
   slower than full int8.

Choosing the best of a dozen candidates on the same clips favours the one that got lucky
on their near-boundary few, so from 9 held-out clips on every third clip is kept out of the
search (`split_held_out`) and the chosen model's agreement is confirmed on those: the report
gives both, and the log warns when the confirmation falls below the target.

If no candidate reaches the target, `AgreementNotReachedError` names the best agreement
reached and nothing is written. The report (`AgreementReport`) says what was done and what
it cost.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
import time
from typing import Callable, Sequence

import numpy as np

from keras_squeezetime.tflite import fused_names

logger = logging.getLogger(__name__)

# A unit's tensors: those under one block (stageN_blockM), the stem, or the head.
_STEM = re.compile(r"(?:^|/)(stem|pool)_")
_HEAD = re.compile(r"(?:^|/)head(?:_\d+)?/")


class AgreementNotReachedError(ValueError):
    """No candidate int8 model reached the target agreement on the held-out clips.

    `candidates`: every model measured, as in `AgreementReport.candidates`.
    """

    def __init__(self, message: str, candidates: Sequence[dict] = ()):
        super().__init__(message)
        self.candidates = tuple(candidates)


@dataclasses.dataclass(frozen=True)
class AgreementReport:
    """What `agreeing_int8_model` did and what it cost.

    Attributes:
      method: "int8", then what was added: "+equalized" (per-channel activation
        equalisation), "+mse-ranges", "+float-units".
      target: the agreement asked for.
      agreement: top-1 agreement with the float graph on the held-out clips the search
        measured (what `target` was judged on).
      held_out_clips: how many clips the search measured.
      confirmed_agreement: the chosen model's agreement on the held-out clips kept out of
        the search (None below 9 held-out clips): the unbiased figure.
      confirmation_clips: how many clips measured it.
      activation_ranges: "min/max" or "mse".
      equalized: whether activations were equalised per channel.
      float_layers: units kept float (stem, stageN_blockM, head), fewest first.
      candidates: every model measured: `{"calibration", "float_layers", "agreement",
        "size_bytes"}`, calibration one of `CALIBRATIONS`.
      seconds: time the search took.
    """

    method: str
    target: float
    agreement: float
    held_out_clips: int
    confirmed_agreement: float | None
    confirmation_clips: int
    activation_ranges: str
    equalized: bool
    float_layers: tuple[str, ...]
    candidates: tuple[dict, ...]
    seconds: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# The full-int8 calibrations tried, cheapest first: (activation ranges, equalized).
CALIBRATIONS = {
    "min/max": ("min/max", False),
    "mse": ("mse", False),
    "equalized+mse": ("mse", True),
}


def split_held_out(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(search clips, confirmation clips)`: every third clip confirms (lists are often
    ordered by class), none below 9 clips."""
    if len(clips) < 9:
        return clips, clips[:0]
    confirming = np.arange(len(clips)) % 3 == 2
    return clips[~confirming], clips[confirming]


def unit_of(tensor_name: str) -> str | None:
    """The unit (`stem`, `stageN_blockM`, `head`) a tensor name belongs to, or None."""
    paths = fused_names.op_paths(tensor_name)
    block = fused_names.block_of(paths[0]) if paths else None
    if block:
        return block
    located = ";".join(paths)
    if _STEM.search(located):
        return "stem"
    if _HEAD.search(located):
        return "head"
    return None


def units(spec) -> dict[str, list[int]]:
    """`{unit: rounded tensor indices}` in graph order; the logits output joins the head."""
    found: dict[str, list[int]] = {}
    for index in spec.rounded_tensors():
        unit = "head" if index == spec.logits_index else unit_of(spec.names[index])
        if unit is not None:
            found.setdefault(unit, []).append(index)
    return found


def rank_units(calibrated: bytes, clips: np.ndarray,
               batch_size: int = 8) -> list[tuple[str, float]]:
    """Units by the simulated int8 logit error they cause, largest first: `(unit, share)`.

    A unit's share is how much the mean squared logit error (simulated int8 vs float, on
    `clips`) falls when only that unit is left unrounded, over the full error.
    """
    import tensorflow as tf

    from keras_squeezetime.tflite.simulated_int8 import quantized_graph_class, read_graph

    spec = read_graph(calibrated)
    graph = quantized_graph_class()(spec)
    graph.build(None)
    groups = units(spec)

    indices = [i for tensors in groups.values() for i in tensors]

    @tf.function
    def simulated(x, mask):
        rounded = {index: mask[k] for k, index in enumerate(indices)}
        return graph.run(x, True, rounded=rounded)[spec.logits_index]

    def logits(mask):
        return np.concatenate([simulated(tf.constant(clips[i:i + batch_size], tf.float32),
                                         tf.constant(mask, tf.float32)).numpy()
                               for i in range(0, len(clips), batch_size)])

    reference = np.concatenate([np.asarray(graph(clips[i:i + batch_size].astype(np.float32),
                                                 quantize=False))
                                for i in range(0, len(clips), batch_size)])
    full = float(np.mean((logits(np.ones(len(indices))) - reference) ** 2))
    shares = []
    for unit, tensors in groups.items():
        mask = np.asarray([0.0 if index in tensors else 1.0 for index in indices])
        error = float(np.mean((logits(mask) - reference) ** 2))
        shares.append((unit, (full - error) / full if full > 0 else 0.0))
    return sorted(shares, key=lambda item: -item[1])


def agreement(scores: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the reference's."""
    return float(np.mean(np.argmax(scores, 1) == np.argmax(reference, 1)))


def agreeing_int8_model(
    calibrated: bytes,
    calibration_clips: np.ndarray,
    held_out: np.ndarray,
    target: float,
    quantize: Callable[[bytes, Sequence[str]], bytes],
    finish: Callable[[bytes, bool], bytes],
    log: Callable[[str], None] | None = None,
) -> tuple[bytes, AgreementReport]:
    """The cheapest int8 model whose top-1 agrees with float on >= `target` of `held_out`.

    Args:
      calibrated: the calibrated float model (`export.calibrated_model`).
      calibration_clips: the clips it was calibrated on (MSE ranges and the unit ranking
        are computed on them).
      held_out: other clips, `(N, T, S, S, 3)` pixels, on which agreement is measured
        (searched on two thirds of them, confirmed on the rest, see `split_held_out`).
      target: agreement to reach, in (0, 1].
      quantize: `(calibrated, denied tensor names) -> int8 model`, as the export does it.
      finish: `(int8 model, has float units) -> file bytes` (hybrid kernels, input ops).
      log: progress lines (default: this module's logger).

    Returns:
      `(finished model bytes, AgreementReport)`.

    Raises:
      AgreementNotReachedError: no candidate reached `target` (names the best reached).
    """
    from keras_squeezetime.tflite.activation_ranges import mse_ranges
    from keras_squeezetime.tflite.simulated_int8 import read_graph

    if not 0 < target <= 1:
        raise ValueError(f"target agreement must be in (0, 1]; got {target}.")
    if len(held_out) == 0:
        raise ValueError("No held-out clips to measure agreement on.")
    log = log or logger.info
    started = time.monotonic()
    held_out, confirmation = split_held_out(held_out)
    reference = _scores(calibrated, held_out)
    candidates: list[dict] = []
    models: dict[tuple, bytes] = {}
    # Every calibration has the same ops and tensors (only ranges and weights differ).
    spec = read_graph(calibrated)
    unit_tensors = units(spec)

    def measure(name: str, model: bytes, float_units: tuple[str, ...] = ()) -> float:
        denied = [spec.names[i] for u in float_units for i in unit_tensors[u]]
        finished = finish(quantize(model, denied), bool(float_units))
        value = agreement(_scores(finished, held_out), reference)
        models[(name, float_units)] = finished
        candidates.append({"calibration": name, "float_layers": list(float_units),
                           "agreement": value, "size_bytes": len(finished)})
        log(f"int8 agreement: {name} calibration, {len(float_units)} units float "
            f"{list(float_units)}: {value:.4f} on {len(held_out)} held-out clips "
            f"({len(finished) / 1e6:.2f} MB, {time.monotonic() - started:.0f} s)")
        return value

    mse_model, summary = mse_ranges(calibrated, calibration_clips[:128])
    log(f"int8 agreement: MSE ranges narrowed {summary['narrowed']} of {summary['tensors']} "
        f"tensors (median width x{summary['median_width']:.2f})")
    calibrations = {"min/max": calibrated, "mse": mse_model}
    scores = {name: measure(name, model) for name, model in calibrations.items()}
    if max(scores.values()) < target:
        from keras_squeezetime.tflite.activation_equalization import equalize

        log("int8 agreement: equalising activations per channel")
        equalized, summary = equalize(calibrated, calibration_clips)
        log(f"int8 agreement: {summary['groups']} groups of {summary['tensors']} tensors "
            f"equalised (median channel scale x{summary['median_scale']:.2f})")
        calibrations["equalized+mse"] = mse_ranges(equalized, calibration_clips[:128])[0]
        scores["equalized+mse"] = measure("equalized+mse", calibrations["equalized+mse"])
    # The best full-int8 calibration (the cheaper one on ties).
    base = max(scores, key=lambda name: scores[name])
    best = (scores[base], base, ())
    if best[0] < target:
        ranking = [unit for unit, _ in rank_units(calibrations[base], calibration_clips[:64])]
        log(f"int8 agreement: units by simulated int8 error, largest first: {ranking}")
        reached = {}

        def prefix(k: int) -> float:
            if k not in reached:
                reached[k] = measure(base, calibrations[base], tuple(ranking[:k]))
            return reached[k]

        low, k = 0, 1  # prefix(low) misses the target
        while k < len(ranking) and prefix(k) < target:
            low, k = k, min(2 * k, len(ranking))
        if k == len(ranking) and prefix(k) < target:
            k = None
        else:
            high = k
            while high - low > 1:
                middle = (low + high) // 2
                if prefix(middle) >= target:
                    high = middle
                else:
                    low = middle
            k = high
        if k is not None:
            best = (reached[k], base, tuple(ranking[:k]))
        else:  # the best measured, fewest units on ties
            length = max(reached, key=lambda n: (reached[n], -n))
            if reached[length] > best[0]:
                best = (reached[length], base, tuple(ranking[:length]))
    value, name, float_units = best
    if value < target:
        raise AgreementNotReachedError(
            f"int8 reached at most {value:.4f} top-1 agreement with float on "
            f"{len(held_out)} held-out clips ({name} calibration, {len(float_units)} units "
            f"kept float), below the target {target}; lower --target-agreement, or export "
            "float16/dynamic.", candidates)
    chosen = models[(name, float_units)]
    confirmed = None
    if len(confirmation):
        confirmed = agreement(_scores(chosen, confirmation), _scores(calibrated, confirmation))
        short = (f", below the target {target}: the search's {value:.4f} was optimistic"
                 if confirmed < target else "")
        (logger.warning if short else log)(
            f"int8 agreement: confirmed on {len(confirmation)} held-out clips the search did "
            f"not see: {confirmed:.4f}{short}")
    seconds = time.monotonic() - started
    ranges, is_equalized = CALIBRATIONS[name]
    method = "int8" + ("+equalized" if is_equalized else "") + (
        "+mse-ranges" if ranges == "mse" else "") + ("+float-units" if float_units else "")
    report = AgreementReport(method, target, value, len(held_out), confirmed,
                             len(confirmation), ranges, is_equalized, float_units,
                             tuple(candidates), round(seconds, 1))
    return chosen, report


def _scores(flatbuffer: bytes, clips: np.ndarray) -> np.ndarray:
    """Logits of `clips` from a LiteRT model given as bytes (the real interpreter)."""
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    handle, path = tempfile.mkstemp(suffix=".tflite")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(flatbuffer)
        return LiteRTModel(path, threads=2).scores(np.asarray(clips, np.float32))
    finally:
        os.unlink(path)
