"""SGD as PyTorch runs it in the official recipe: coupled L2 decay, clipping, lr multipliers.

PyTorch's `SGD(weight_decay=wd)` adds `wd * w` to the gradient, so the decay goes through
momentum (coupled L2). Keras' `weight_decay` is decoupled (`w -= lr * wd * w` outside the
momentum), which is a different optimiser at wd 0.008 (the HMDB51 recipe), so `TorchSGD`
adds the L2 term itself. One step, in mmaction's order:

1. clip the raw gradients of all variables to global norm `global_clipnorm`
   (mmaction's `clip_grad` runs before `optimizer.step()`, i.e. before the L2 term); under
   a distribution strategy, after the gradients are summed across replicas (Keras clips
   each replica's share before the sum, which is not what one device does);
2. `d = (g + wd * w) * lr_multiplier(w)`;
3. `buf = momentum * buf + d; w -= lr * buf` (PyTorch's momentum form: the buffer does not
   hold the learning rate, so a schedule change acts at once, as in PyTorch).

Per-variable learning-rate multipliers (the HMDB51 backbone at 0.1x) scale `d` in step 2.
Because the update is linear in `d`, this is exactly PyTorch's per-parameter-group lr; and
because it is a constant per variable applied inside `update_step`, it runs unchanged under
any `tf.distribute` strategy (one optimizer, one set of slots, no second optimizer whose
iterations or loss scale could drift from the first).
"""

from __future__ import annotations

from typing import Mapping

import keras
from keras import ops

# Registers the schedules a saved TorchSGD refers to, so loading one needs only this module.
from keras_squeezetime.training import compat, schedules  # noqa: F401


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class TorchSGD(compat.ClipAfterAllReduce, keras.optimizers.SGD):
    """SGD with momentum, PyTorch-style coupled L2 weight decay and lr multipliers.

    Args:
      learning_rate: float or `LearningRateSchedule`.
      momentum: momentum factor (PyTorch form, see the module doc).
      l2_decay: coupled weight decay (PyTorch's `weight_decay`), on every variable.
      lr_multipliers: `{variable path prefix: factor}`; a variable takes the factor of
        the longest prefix its `path` starts with (`""` matches all), else 1. E.g.
        `{"": 0.1, "head/": 1.0}` trains everything but the head at a tenth of the rate.
      global_clipnorm: clip the gradients to this global norm (None: no clipping).
      **kwargs: other `keras.optimizers.Optimizer` arguments (not `weight_decay`).
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = 0.9,
        l2_decay: float = 0.0,
        lr_multipliers: Mapping[str, float] | None = None,
        global_clipnorm: float | None = None,
        name: str = "torch_sgd",
        **kwargs,
    ):
        if kwargs.get("weight_decay"):
            raise ValueError("TorchSGD takes l2_decay (coupled, as PyTorch), not weight_decay.")
        kwargs.pop("weight_decay", None)
        # Clipping is done after the all-reduce, not by the base class: see
        # `compat.ClipAfterAllReduce`.
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)
        self.clip_norm = float(global_clipnorm) if global_clipnorm else None
        if momentum <= 0:
            raise ValueError(f"TorchSGD needs momentum > 0; got {momentum}.")
        self.l2_decay = float(l2_decay)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
        self._multipliers: list[float] = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._multipliers = [self.multiplier_for(v.path) for v in variables]

    def multiplier_for(self, path: str) -> float:
        """The lr multiplier of the variable at `path` (longest matching prefix)."""
        matches = [prefix for prefix in self.lr_multipliers if path.startswith(prefix)]
        if not matches:
            return 1.0
        return self.lr_multipliers[max(matches, key=len)]

    def update_step(self, gradient, variable, learning_rate):
        index = compat.variable_index(self, variable)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_decay:
            gradient = gradient + self.l2_decay * variable
        multiplier = self._multipliers[index]
        if multiplier != 1.0:
            gradient = gradient * multiplier
        buffer = self.momentums[index]
        self.assign(buffer, buffer * ops.cast(self.momentum, variable.dtype) + gradient)
        self.assign_sub(variable, learning_rate * buffer)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "l2_decay": self.l2_decay,
                "lr_multipliers": dict(self.lr_multipliers),
                "global_clipnorm": self.clip_norm,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class AdamW(compat.DecayAtOneLearningRate, compat.AdamStepSizeOnce, compat.ClipAfterAllReduce,
            keras.optimizers.AdamW):
    """Keras' AdamW (decoupled weight decay) with the gradient clip after the all-reduce.

    The `custom` recipe's optimizer. Clipping (`global_clipnorm`, off in that recipe) acts on
    the gradient summed over replicas, as on one device (see `compat.ClipAfterAllReduce`);
    the decay uses one evaluation of the schedule per step and Adam's step size is computed
    once a step (`compat.DecayAtOneLearningRate`, `compat.AdamStepSizeOnce`: the same
    values, a shorter first step).
    """

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004,
                 global_clipnorm: float | None = None, name: str = "adamw", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)
        self.clip_norm = float(global_clipnorm) if global_clipnorm else None

    def get_config(self) -> dict:
        config = super().get_config()
        config["global_clipnorm"] = self.clip_norm
        return config
