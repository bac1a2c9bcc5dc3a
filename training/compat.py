"""Every private Keras / TensorFlow call of training, in one place, for the versions below.

Training needs a few internals that have no public form in Keras 3.15 / TensorFlow 2.21:

- `build_before_fit`: `Model._symbolic_build` and `Model._maybe_symbolic_build` (build the
  model, optimizer and metric state from shapes before `fit` under a strategy);
- `patch_multi_worker_reduction`: Keras' TensorFlow trainer's `reduce_per_replica` and
  `_collective_all_reduce_multi_worker` (scalar step outputs under multi-worker);
- `num_workers`: `MultiWorkerMirroredStrategy.extended._num_workers`;
- `variable_index`: `Optimizer._get_variable_index` (slot lookup in `update_step`);
- `ClipAfterAllReduce`: the optimizer hooks `_clip_gradients`, `_backend_update_step`,
  `_all_reduce_sum_gradients`, `_distributed_tf_update_step`, Keras' `clip_by_global_norm`
  and `tf.__internal__.distribute.interim.maybe_merge_call` (clip the summed gradient);
- `DecayAtOneLearningRate`: the optimizer hooks `_apply_weight_decay`, `_use_weight_decay`
  and `_distribution_strategy` (the learning-rate schedule evaluated once per step);
- `AdamStepSizeOnce`: `_backend_update_step` again, and Adam's slots `_momentums` and
  `_velocities` (Adam's step size computed once per step).

`missing_internals()` lists the internals that are gone (the optimizer's instance
attributes on a freshly built Adam); importing this module with other
versions than `TESTED_KERAS` / `TESTED_TENSORFLOW` logs a warning naming them, and
tests/training/test_compat.py fails loudly on an upgrade that breaks any of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from absl import logging
import keras
import numpy as np

# The major.minor versions these internals were written and tested for.
TESTED_KERAS = ("3.15",)
TESTED_TENSORFLOW = ("2.21",)


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


# The files of Keras' `BackupAndRestore(double_checkpoint=True)`: weights (model and
# optimizer), the epoch to resume from, and the suffix of the previous epoch's copies.
# `run_folder.resume_epoch` repairs a half-written backup with them.
BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"
PREVIOUS_BACKUP = ".bkp"


def missing_internals() -> list[str]:
    """The private names this module relies on that the installed versions lack."""
    import tensorflow as tf

    needed: list[tuple[Any, str, str]] = [
        (keras.Model, "_symbolic_build", "keras.Model._symbolic_build"),
        (keras.Model, "_maybe_symbolic_build", "keras.Model._maybe_symbolic_build"),
        (keras.optimizers.Optimizer, "_clip_gradients", "Optimizer._clip_gradients"),
        (keras.optimizers.Optimizer, "_backend_update_step", "Optimizer._backend_update_step"),
        (keras.optimizers.Optimizer, "_all_reduce_sum_gradients",
         "Optimizer._all_reduce_sum_gradients"),
        (keras.optimizers.Optimizer, "_distributed_tf_update_step",
         "Optimizer._distributed_tf_update_step"),
        (keras.optimizers.Optimizer, "_get_variable_index", "Optimizer._get_variable_index"),
        (keras.optimizers.Optimizer, "_apply_weight_decay", "Optimizer._apply_weight_decay"),
        (keras.optimizers.Optimizer, "_use_weight_decay", "Optimizer._use_weight_decay"),
    ]
    missing = [name for owner, attribute, name in needed if not hasattr(owner, attribute)]
    for module, attribute in (
        ("keras.src.optimizers.base_optimizer", "clip_by_global_norm"),
        ("keras.src.backend.tensorflow.trainer", "reduce_per_replica"),
        ("keras.src.backend.tensorflow.trainer", "_collective_all_reduce_multi_worker"),
        ("keras.src.tree", "map_structure"),
    ):
        try:
            if not hasattr(importlib.import_module(module), attribute):
                missing.append(f"{module}.{attribute}")
        except ImportError:
            missing.append(f"{module}.{attribute}")
    try:
        tf.__internal__.distribute.interim.maybe_merge_call  # noqa: B018
    except AttributeError:
        missing.append("tf.__internal__.distribute.interim.maybe_merge_call")
    # Instance attributes exist only on a built optimizer: build one on one variable.
    adam = keras.optimizers.Adam()
    adam.build([keras.Variable(np.zeros(1, "float32"))])
    missing += [f"Adam.{attribute}" for attribute in
                ("_momentums", "_velocities", "_distribution_strategy")
                if not hasattr(adam, attribute)]
    # run_folder.resume_epoch repairs a half-written backup by these file names.
    backup = keras.callbacks.BackupAndRestore("backup", double_checkpoint=True)
    for attribute, expected in (
        ("_weights_path", BACKUP_WEIGHTS),
        ("_prev_weights_path", BACKUP_WEIGHTS + PREVIOUS_BACKUP),
        ("_training_metadata_path", BACKUP_METADATA),
        ("_prev_training_metadata_path",
         BACKUP_METADATA + PREVIOUS_BACKUP),
    ):
        if not str(getattr(backup, attribute, "")).endswith("/" + expected):
            missing.append(f"BackupAndRestore.{attribute} ending in {expected}")
    return missing


def check_versions() -> list[str]:
    """Warnings for installed versions other than the tested ones (also logged at import)."""
    warnings = []
    if _major_minor(keras.__version__) not in TESTED_KERAS:
        warnings.append(f"Keras {keras.__version__} (tested: {', '.join(TESTED_KERAS)})")
    try:
        import tensorflow as tf
    except ImportError:  # another backend without TensorFlow: only the optimizer hooks apply
        return warnings
    if _major_minor(tf.__version__) not in TESTED_TENSORFLOW:
        warnings.append(f"TensorFlow {tf.__version__} (tested: {', '.join(TESTED_TENSORFLOW)})")
    return warnings


def build_before_fit(model: keras.Model, strategy, specs) -> None:
    """Builds model, optimizer, loss and metric state from `specs` before `fit`.

    Under a strategy, Keras 3.15's `fit` builds this state from its first distributed batch,
    which it first averages eagerly over replicas with `strategy.reduce`. That fails under
    `MultiWorkerMirroredStrategy` (`ValueError: Attempt to convert a value (PerReplica ...)`)
    and under `MirroredStrategy` when a short last batch leaves a replica empty (`AddN` of
    `[8, ...]` and `[0, ...]`). Building from shapes does the same work without the
    reduction, and `fit` is told it is done.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=specs)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def num_workers(strategy) -> int:
    """Worker processes of a `MultiWorkerMirroredStrategy` (no public accessor in TF 2.21)."""
    return strategy.extended._num_workers


def patch_multi_worker_reduction() -> None:
    """Works around Keras 3.15 reducing scalar step outputs with `axis=0` under MWMS.

    `fit` averages each step's metrics over replicas with `strategy.reduce("MEAN", v,
    axis=0)` when the strategy is `MultiWorkerMirroredStrategy`; the metrics are scalars,
    so the train function fails to trace ("Invalid reduction dimension 0 for input with 0
    dimensions"). This reduces scalars across replicas (`axis=None`) and leaves every other
    case to Keras. Idempotent.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_squeezetime_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            def mean(value):
                if len(value.shape) == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return strategy.reduce("MEAN", value, axis=0)

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._squeezetime_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """Index of `variable` in the optimizer's slot lists (Keras' own optimizers use it)."""
    return optimizer._get_variable_index(variable)


def clip_by_global_norm(grads, clip_norm: float):
    """Keras' own global-norm clip (`keras.src.optimizers.base_optimizer`)."""
    from keras.src.optimizers.base_optimizer import clip_by_global_norm as clip

    return clip(grads, clip_norm)


class ClipAfterAllReduce:
    """Optimizer mixin: clip the gradients to `self.clip_norm` after the cross-replica sum.

    Keras clips each replica's share before the sum, so under a distribution strategy the
    effective clip would grow with the replica count. On TensorFlow this reimplements
    Keras' `_backend_update_step` with the clip moved after the all-reduce: the summed
    gradient is the global batch's, so clipping it matches one device exactly. Other
    backends (no strategy) clip in `_clip_gradients` as Keras does. Put it first in the
    bases: `class TorchSGD(ClipAfterAllReduce, keras.optimizers.SGD)`.
    """

    clip_norm: float | None = None

    def _clip_gradients(self, grads):
        if self.clip_norm is None or keras.backend.backend() == "tensorflow":
            return grads
        return clip_by_global_norm(grads, self.clip_norm)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import tensorflow as tf

        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        if self.clip_norm is not None:
            clipped = clip_by_global_norm([g for g, _ in grads_and_vars], self.clip_norm)
            grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            grads_and_vars,
            learning_rate,
        )


class DecayAtOneLearningRate:
    """Optimizer mixin: decoupled weight decay with the learning rate evaluated once a step.

    Keras' TensorFlow optimizer evaluates `self.learning_rate`, a schedule, again for every
    variable it decays: the traced step holds one copy of the schedule per variable (445
    for SqueezeTime), a third of the first step's tracing. This decays every variable with
    one evaluation, as Keras does otherwise (same variables, same arithmetic, under any
    strategy). Other backends keep Keras' own. Put it before the Keras optimizer in the
    bases.
    """

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or keras.backend.backend() != "tensorflow":
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        def decay_all(distribution, variables):
            learning_rate = self.learning_rate  # cross-replica context: once per step

            def decay(variable):
                if self._use_weight_decay(variable):
                    variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype)
                                        * tf.cast(learning_rate, variable.dtype))

            for variable in variables:
                value = variable.value if isinstance(variable, keras.Variable) else variable
                distribution.extended.update(value, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            decay_all, self._distribution_strategy, variables)


class AdamStepSizeOnce:
    """Adam optimizer mixin: the step size computed once a step, not once per variable.

    Keras' `Adam.update_step` computes `lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)` again
    for every variable (a dozen scalar ops each: 445 copies in SqueezeTime's traced step).
    Here `_backend_update_step` computes it once and hands it to `update_step` in place of
    the learning rate; each variable's update is Adam's, in the same order and dtype
    (float32 variables: the same values). With `amsgrad`, Keras' own. Put it before the
    Keras optimizer and `ClipAfterAllReduce` in the bases.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self.amsgrad:
            step = keras.ops.cast(self.iterations + 1, "float32")
            learning_rate = (keras.ops.cast(learning_rate, "float32")
                             * keras.ops.sqrt(1 - keras.ops.power(self.beta_2, step))
                             / (1 - keras.ops.power(self.beta_1, step)))
        return super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        step_size = keras.ops.cast(learning_rate, variable.dtype)  # from _backend_update_step
        gradient = keras.ops.cast(gradient, variable.dtype)
        index = variable_index(self, variable)
        m, v = self._momentums[index], self._velocities[index]
        ops = keras.ops
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size),
                                             ops.add(ops.sqrt(v), self.epsilon)))


def _warn_at_import() -> None:
    untested = check_versions()
    if untested:
        logging.warning(
            "keras_squeezetime.training uses private Keras/TensorFlow calls written for other "
            "versions: %s. Missing now: %s.", "; ".join(untested),
            ", ".join(missing_internals()) or "none",
        )


_warn_at_import()
