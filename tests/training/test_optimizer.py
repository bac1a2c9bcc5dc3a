"""TorchSGD's parts one at a time, against updates written out by hand; AdamW's decay.

tests/training/test_schedules.py checks a whole step (clipping, coupled decay, multipliers
and a schedule together) against a NumPy PyTorch SGD; here each part is isolated.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime.training.optimizer import AdamW, TorchSGD


def _steps(optimizer, initial, grads):
    variables = [keras.Variable(np.array(w, np.float32), name=name)
                 for name, w in initial.items()]
    for step in grads:
        optimizer.apply_gradients(
            zip([keras.ops.convert_to_tensor(np.array(g, np.float32)) for g in step], variables))
    return [keras.ops.convert_to_numpy(v) for v in variables]


def test_plain_momentum_sgd_without_decay_or_clipping():
    # PyTorch form, lr 0.5, momentum 0.5: buf = 0.5 buf + g; w -= 0.5 buf.
    # w = 1, g = 4, 2, 40: buf 4, 4, 42; w 1 - 2 = -1, -1 - 2 = -3, -3 - 21 = -24.
    # The last gradient, 40, is not clipped: no global_clipnorm.
    (w,) = _steps(TorchSGD(0.5, momentum=0.5), {"w": [1.0]}, [[[4.0]], [[2.0]], [[40.0]]])
    assert w.tolist() == [-24.0]


def test_coupled_decay_and_multiplier_enter_the_momentum_buffer():
    # l2 0.5, multiplier 2, lr 0.25, momentum 0.5, w = 2, g = 1 then 0:
    # d1 = (1 + 0.5 * 2) * 2 = 4, buf 4, w = 2 - 1 = 1;
    # d2 = (0 + 0.5 * 1) * 2 = 1, buf = 0.5 * 4 + 1 = 3, w = 1 - 0.75 = 0.25.
    optimizer = TorchSGD(0.25, momentum=0.5, l2_decay=0.5, lr_multipliers={"w": 2.0})
    (w,) = _steps(optimizer, {"w": [2.0]}, [[[1.0]], [[0.0]]])
    assert w.tolist() == [0.25]


def test_clipping_scales_all_gradients_by_their_global_norm():
    # Gradients (3, 4) and (12): global norm 13; clipped to 6.5 they halve.
    # One step, lr 1: w = 0 - g / 2.
    optimizer = TorchSGD(1.0, momentum=0.9, global_clipnorm=6.5)
    a, b = _steps(optimizer, {"a": [0.0, 0.0], "b": [0.0]}, [[[3.0, 4.0], [12.0]]])
    np.testing.assert_allclose(a, [-1.5, -2.0], rtol=1e-6)
    np.testing.assert_allclose(b, [-6.0], rtol=1e-6)


def test_multiplier_is_that_of_the_longest_matching_prefix():
    optimizer = TorchSGD(0.1, lr_multipliers={"": 0.1, "stage4": 0.5, "stage4_block2/": 2.0})
    assert optimizer.multiplier_for("stem_conv/kernel") == pytest.approx(0.1)
    assert optimizer.multiplier_for("stage4_block1/conv1/kernel") == pytest.approx(0.5)
    assert optimizer.multiplier_for("stage4_block2/conv1/kernel") == pytest.approx(2.0)
    assert TorchSGD(0.1, lr_multipliers={"head/": 3.0}).multiplier_for("stem/kernel") == 1.0


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="momentum"):
        TorchSGD(0.1, momentum=0.0)
    assert TorchSGD(0.1, weight_decay=0.0).l2_decay == 0.0  # a zero decoupled decay is harmless
    assert TorchSGD(0.1, global_clipnorm=None).clip_norm is None
    restored = TorchSGD.from_config(TorchSGD(0.1, momentum=0.7, global_clipnorm=2.0).get_config())
    assert restored.momentum == pytest.approx(0.7) and restored.clip_norm == 2.0


def test_defaults_and_no_decoupled_decay():
    optimizer = TorchSGD()
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.01)
    assert optimizer.momentum == pytest.approx(0.9) and optimizer.l2_decay == 0.0
    # Keras' own (decoupled) decay stays off even when a zero one is passed.
    assert TorchSGD(0.1, weight_decay=0.0).weight_decay is None


def test_float64_variable_with_float32_gradient_and_rate():
    # lr 0.5, momentum 0.5, w = 1 (float64), g = 0.25 (float32): w = 1 - 0.125.
    w = keras.Variable(np.array([1.0]), dtype="float64", name="w")
    TorchSGD(0.5, momentum=0.5).apply_gradients(
        [(keras.ops.convert_to_tensor(np.array([0.25], np.float32)), w)])
    assert keras.ops.convert_to_numpy(w).tolist() == [0.875]


class _CountingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """0.5 * 0.5 ** step, counting its evaluations (each one is a copy in a traced step)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, step):
        self.calls += 1
        return 0.5 * keras.ops.power(0.5, keras.ops.cast(step, "float32"))


@pytest.mark.parametrize("traced", [False, True])
def test_adamw_decays_with_the_step_learning_rate_evaluated_once(traced):
    import tensorflow as tf

    # Zero gradients: Adam's update is 0 / (0 + eps) = 0, so only the decoupled decay acts:
    # w <- w (1 - wd lr(step)) with wd 0.5 and lr 0.5, 0.25, 0.125 at steps 0, 1, 2:
    # 8 * 0.75 = 6, 6 * 0.875 = 5.25, 5.25 * 0.9375 = 4.921875 (exact in float32).
    schedule = _CountingSchedule()
    optimizer = AdamW(schedule, weight_decay=0.5)
    variables = [keras.Variable(np.full((2,), 8.0, np.float32), name=f"w{i}") for i in range(3)]
    optimizer.build(variables)
    zeros = [tf.zeros((2,)) for _ in variables]

    def step():
        optimizer.apply_gradients(zip(zeros, variables))

    step = tf.function(step) if traced else step
    for _ in range(3):
        step()
    for variable in variables:
        assert keras.ops.convert_to_numpy(variable).tolist() == [4.921875, 4.921875]
    # Once for the decay and once for Adam's step, per step or per trace; Keras' own AdamW
    # evaluates it once more per variable (3 here, 445 in SqueezeTime).
    assert schedule.calls == (2 if traced else 6)


@pytest.mark.parametrize("traced", [False, True])
def test_adamw_updates_are_keras_adamw_updates(traced):
    """The step size and the decay computed once a step change no value: bit for bit
    Keras' AdamW over 4 steps of random gradients with a warm-up cosine schedule."""
    import tensorflow as tf

    from keras_squeezetime.training.schedules import WarmupCosineDecay

    rng = np.random.default_rng(0)
    initial = [rng.normal(size=shape).astype(np.float32) for shape in [(3, 4), (4,), (2, 2, 3)]]
    grads = [[rng.normal(size=w.shape).astype(np.float32) for w in initial] for _ in range(4)]
    finals = []
    for optimizer_class in (AdamW, keras.optimizers.AdamW):
        schedule = WarmupCosineDecay(0.01, steps_per_epoch=2, total_epochs=3, warmup_epochs=1,
                                     warmup_factor=0.1)
        optimizer = optimizer_class(schedule, weight_decay=0.05)
        variables = [keras.Variable(w) for w in initial]
        optimizer.build(variables)

        def step(step_grads):
            optimizer.apply_gradients(zip(step_grads, variables))

        step = tf.function(step) if traced else step
        for step_grads in grads:
            step([tf.constant(g) for g in step_grads])
        finals.append([keras.ops.convert_to_numpy(v) for v in variables])
    for ours, theirs in zip(*finals):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.allclose(finals[0][0], initial[0])  # the steps did move the variables
