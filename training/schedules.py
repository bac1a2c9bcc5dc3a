"""Learning-rate schedules of the paper's recipes, per optimizer step, serialisable.

Both are written in epochs and evaluated per step (`epoch = step / steps_per_epoch`), as
mmaction's `convert_to_iter_based` schedulers do for warm-up and cosine. The multistep
schedule changes at epoch boundaries, as `MultiStepLR(by_epoch=True)` does.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `base * warmup_factor`, then cosine down to a floor `lo`.

    `lr(e) = base * (f0 + (1 - f0) * e / W)` for epochs `e < W`, then
    `lr(e) = lo + (base - lo) * (1 + cos(pi * (e - W) / (E - W))) / 2`, reaching `lo` at
    `E = total_epochs` and staying there. `lo` is `final_learning_rate` when given (an
    absolute floor, as mmengine's `eta_min`, which its `auto_scale_lr` does not scale with
    the batch), else `base * final_factor`; never above `base`.

    Args:
      base_learning_rate: peak learning rate (reached at the end of warm-up).
      steps_per_epoch: optimizer steps per epoch.
      total_epochs: epoch at which the cosine reaches its floor.
      warmup_epochs: length of the linear warm-up (0 starts at the peak).
      warmup_factor: warm-up start as a fraction of the peak (mmaction `start_factor` 0.1).
      final_factor: floor as a fraction of the peak (0.01: "cosine to lr/100").
      final_learning_rate: absolute floor; overrides `final_factor`.
    """

    def __init__(
        self,
        base_learning_rate: float,
        steps_per_epoch: int,
        total_epochs: float,
        warmup_epochs: float = 0.0,
        warmup_factor: float = 0.1,
        final_factor: float = 0.01,
        final_learning_rate: float | None = None,
    ):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1; got {steps_per_epoch}.")
        if not 0 <= warmup_epochs < total_epochs:
            raise ValueError(
                f"Need 0 <= warmup_epochs < total_epochs; got {warmup_epochs}, {total_epochs}."
            )
        self.base_learning_rate = float(base_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_epochs = float(total_epochs)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_factor = float(warmup_factor)
        self.final_factor = float(final_factor)
        self.final_learning_rate = (
            None if final_learning_rate is None else float(final_learning_rate)
        )

    def __call__(self, step):
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        base = self.base_learning_rate
        floor = base * self.final_factor
        if self.final_learning_rate is not None:
            floor = min(self.final_learning_rate, base)
        if self.warmup_epochs > 0:
            warm = base * (
                self.warmup_factor + (1.0 - self.warmup_factor) * epoch / self.warmup_epochs
            )
        else:
            warm = ops.convert_to_tensor(base, "float32")
        progress = ops.clip(
            (epoch - self.warmup_epochs) / (self.total_epochs - self.warmup_epochs), 0.0, 1.0
        )
        cosine = floor + (base - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(epoch < self.warmup_epochs, warm, cosine)

    def get_config(self) -> dict:
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "total_epochs": self.total_epochs,
            "warmup_epochs": self.warmup_epochs,
            "warmup_factor": self.warmup_factor,
            "final_factor": self.final_factor,
            "final_learning_rate": self.final_learning_rate,
        }


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`base * gamma ** (number of milestones <= current epoch)`, epochs counted whole.

    Args:
      base_learning_rate: learning rate before the first milestone.
      steps_per_epoch: optimizer steps per epoch.
      milestones: epochs (0-based, as mmaction's `MultiStepLR`) at whose start the rate drops.
      gamma: factor applied at each milestone.
    """

    def __init__(
        self,
        base_learning_rate: float,
        steps_per_epoch: int,
        milestones: Sequence[int],
        gamma: float = 0.1,
    ):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1; got {steps_per_epoch}.")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing; got {list(milestones)}.")
        self.base_learning_rate = float(base_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / float(self.steps_per_epoch))
        drops = ops.zeros((), "float32")
        for milestone in self.milestones:
            drops = drops + ops.cast(epoch >= milestone, "float32")
        return self.base_learning_rate * ops.power(self.gamma, drops)

    def get_config(self) -> dict:
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }
