"""Learning-rate schedules, recipes and the PyTorch-form SGD, against hand-computed values."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from keras_squeezetime.training.optimizer import TorchSGD
from keras_squeezetime.training.recipes import HMDB51, KINETICS400, KINETICS600, get_recipe
from keras_squeezetime.training.schedules import MultiStepDecay, WarmupCosineDecay


def _lr(schedule, epoch: float, steps_per_epoch: int = 10) -> float:
    return float(keras.ops.convert_to_numpy(schedule(int(round(epoch * steps_per_epoch)))))


def test_warmup_cosine_at_key_epochs():
    # Kinetics: warm-up from lr/10 over 8 epochs, cosine to lr/100 at epoch 100.
    schedule = WarmupCosineDecay(0.1, steps_per_epoch=10, total_epochs=100, warmup_epochs=8)
    assert _lr(schedule, 0) == pytest.approx(0.01)
    assert _lr(schedule, 4) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))  # 0.055
    assert _lr(schedule, 8) == pytest.approx(0.1)
    assert _lr(schedule, 54) == pytest.approx(0.001 + 0.099 * 0.5)  # cosine half-way
    assert _lr(schedule, 77) == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 0.75)))
    assert _lr(schedule, 100) == pytest.approx(0.001)
    assert _lr(schedule, 130) == pytest.approx(0.001)  # stays at the floor


def test_warmup_is_per_step_not_per_epoch():
    schedule = WarmupCosineDecay(1.0, steps_per_epoch=4, total_epochs=10, warmup_epochs=2)
    values = [float(schedule(step)) for step in range(9)]
    assert values[:8] == pytest.approx([0.1 + 0.9 * s / 8 for s in range(8)])
    assert values[8] == pytest.approx(1.0)


def test_cosine_floor_can_be_absolute_and_never_exceeds_the_peak():
    # mmengine's eta_min: 1.5e-4 whatever the batch (the peak scales, the floor does not).
    for peak in (0.12, 0.015):
        schedule = WarmupCosineDecay(peak, 10, 100, 8, final_learning_rate=1.5e-4)
        assert _lr(schedule, 100) == pytest.approx(1.5e-4)
        assert _lr(schedule, 54) == pytest.approx(1.5e-4 + (peak - 1.5e-4) * 0.5)
    tiny = WarmupCosineDecay(1e-4, 10, 100, 8, final_learning_rate=1.5e-4)
    assert _lr(tiny, 100) == pytest.approx(1e-4)  # a floor above the peak stays flat


def test_multistep_drops_at_epoch_boundaries():
    schedule = MultiStepDecay(0.02, steps_per_epoch=10, milestones=(12, 24), gamma=0.1)
    assert _lr(schedule, 0) == pytest.approx(0.02)
    assert _lr(schedule, 11.9) == pytest.approx(0.02)
    assert _lr(schedule, 12) == pytest.approx(0.002)
    assert _lr(schedule, 23.9) == pytest.approx(0.002)
    assert _lr(schedule, 24) == pytest.approx(0.0002)
    assert _lr(schedule, 49) == pytest.approx(0.0002)


@pytest.mark.parametrize(
    "schedule",
    [
        WarmupCosineDecay(0.3, 7, 20, 3, 0.2, 0.05),
        WarmupCosineDecay(0.3, 7, 20, 3, 0.2, final_learning_rate=1e-3),
        MultiStepDecay(0.5, 3, (2, 5), 0.5),
    ],
)
def test_schedules_round_trip_through_keras_serialization(schedule):
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    for step in (0, 5, 17, 40):
        assert float(restored(step)) == pytest.approx(float(schedule(step)))


def test_recipes_scale_lr_with_batch_and_stretch_with_epochs():
    assert KINETICS400.learning_rate(512) == pytest.approx(0.12)  # paper: batch 512
    assert HMDB51.learning_rate(64) == pytest.approx(0.02)
    # The official configs: weight decay 7e-5 (K400), 3e-5 (K600), 0.008 (HMDB51); the
    # cosine floor is eta_min = 0.015 / 100, not scaled with the batch.
    assert (KINETICS400.weight_decay, KINETICS600.weight_decay) == (7e-5, 3e-5)
    assert HMDB51.weight_decay == 0.008
    assert KINETICS400.final_lr == KINETICS600.final_lr == pytest.approx(1.5e-4)
    short = HMDB51.scaled_to(25)
    assert short.milestones == (6, 12)
    assert KINETICS400.scaled_to(10).warmup_epochs == pytest.approx(0.8)
    with pytest.raises(ValueError, match="kinetics400"):
        get_recipe("kinetics-400")


def _torch_sgd_reference(weights, grads_per_step, lrs, momentum, wd, clip, multipliers):
    """PyTorch SGD with param-group lr factors after mmaction's clip_grad_norm_, in NumPy."""
    weights = [w.astype(np.float64).copy() for w in weights]
    buffers = [None] * len(weights)
    for grads, lr in zip(grads_per_step, lrs):
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        scale = min(1.0, clip / (norm + 1e-6))
        for i, (w, g) in enumerate(zip(weights, grads)):
            d = g * scale + wd * w
            buffers[i] = d if buffers[i] is None else momentum * buffers[i] + d
            w -= lr * multipliers[i] * buffers[i]
    return weights


def test_torch_sgd_matches_pytorch_sgd_with_clipping_decay_and_multipliers():
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]
    variables = [
        keras.Variable(initial[0], name="backbone_kernel"),
        keras.Variable(initial[1], name="head_bias"),
    ]
    steps = 4
    grads = [[rng.normal(scale=30.0, size=w.shape).astype(np.float32) for w in initial]
             for _ in range(steps)]
    schedule = MultiStepDecay(0.1, steps_per_epoch=1, milestones=(2,), gamma=0.1)
    optimizer = TorchSGD(
        schedule, momentum=0.9, l2_decay=0.01, global_clipnorm=40.0,
        lr_multipliers={"": 0.1, "head_": 1.0},
    )
    for step_grads in grads:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step_grads],
                                      variables))
    # The clip is active: every step's raw norm is far above 40.
    assert min(math.sqrt(sum(float(np.sum(g ** 2)) for g in s)) for s in grads) > 40
    expected = _torch_sgd_reference(
        initial, grads, [0.1, 0.1, 0.01, 0.01], 0.9, 0.01, 40.0, [0.1, 1.0]
    )
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), want, rtol=1e-5,
                                   atol=1e-6)


def test_torch_sgd_round_trips_and_rejects_decoupled_decay():
    optimizer = TorchSGD(0.1, l2_decay=7e-5, global_clipnorm=40.0, lr_multipliers={"": 0.1})
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, TorchSGD)
    assert restored.l2_decay == pytest.approx(7e-5)
    assert restored.lr_multipliers == {"": 0.1}
    assert restored.clip_norm == 40.0
    assert restored.multiplier_for("head/fc/kernel") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="l2_decay"):
        TorchSGD(0.1, weight_decay=1e-4)


def test_cosine_without_warmup_starts_at_the_peak():
    # No warm-up by default: cos(pi * e / 10) from the peak 1.0 to the floor 0.01.
    schedule = WarmupCosineDecay(1.0, steps_per_epoch=2, total_epochs=10)
    assert float(schedule(0)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(0.01 + 0.99 * 0.5)  # epoch 5 of 10
    assert float(schedule(20)) == pytest.approx(0.01)


def test_warmup_shorter_than_an_epoch_still_ramps():
    # A recipe scaled to few epochs warms up over 0.5 epoch = 5 steps: 0.1 + 0.9 * s / 5.
    schedule = WarmupCosineDecay(1.0, steps_per_epoch=10, total_epochs=4, warmup_epochs=0.5)
    assert [float(schedule(s)) for s in range(5)] == pytest.approx(
        [0.1, 0.28, 0.46, 0.64, 0.82])
    assert float(schedule(5)) == pytest.approx(1.0)


def test_schedules_accept_the_edges_and_reject_what_is_past_them():
    assert float(WarmupCosineDecay(1.0, 1, 1, warmup_epochs=0)(0)) == pytest.approx(1.0)
    assert float(MultiStepDecay(1.0, 1, (1,))(1)) == pytest.approx(0.1)
    for bad_steps in (0, -1):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            WarmupCosineDecay(1.0, bad_steps, 10)
        with pytest.raises(ValueError, match="steps_per_epoch"):
            MultiStepDecay(1.0, bad_steps, (1,))
    for warmup in (-1, 10, 11):  # warm-up must end before the last epoch (10)
        with pytest.raises(ValueError, match="warmup_epochs"):
            WarmupCosineDecay(1.0, 1, 10, warmup_epochs=warmup)
    with pytest.raises(ValueError, match="milestones"):
        MultiStepDecay(1.0, 1, (5, 2))
