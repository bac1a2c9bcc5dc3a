"""`training/compat.py`: every private Keras/TensorFlow call training makes, exercised.

An upgrade that renames or changes one of them fails here, by name, before a training run
fails somewhere inside `fit`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime.training import compat
from keras_squeezetime.training.optimizer import TorchSGD


def test_installed_versions_are_the_tested_ones_and_no_internal_is_missing():
    assert compat.check_versions() == []
    assert compat.missing_internals() == []


def test_missing_internals_sees_attributes_of_a_built_optimizer(monkeypatch):
    """Adam's slots exist only once built; an Adam that names them otherwise is caught."""

    class RenamedSlots(keras.optimizers.Adam):
        def build(self, variables):
            super().build(variables)
            self._second_moments = self.__dict__.pop("_velocities")

    monkeypatch.setattr(keras.optimizers, "Adam", RenamedSlots)
    assert compat.missing_internals() == ["Adam._velocities"]


def _dense_model(units: int = 3) -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(units)(inputs))


def test_build_before_fit_builds_all_state_and_fit_skips_its_own_build():
    strategy = tf.distribute.get_strategy()
    model = _dense_model()
    model.compile(TorchSGD(0.1, 0.9), "mse")
    assert not model.optimizer.built
    compat.build_before_fit(model, strategy, (tf.TensorSpec((2, 4)), tf.TensorSpec((2, 3))))
    assert model.optimizer.built and model.built
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(np.ones((2, 4), "float32"), np.zeros((2, 3), "float32"), verbose=0)
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


def test_num_workers_of_a_one_worker_multi_worker_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert compat.num_workers(tf.distribute.MultiWorkerMirroredStrategy()) == 1


def test_multi_worker_reduction_patch_is_installed_once_and_keeps_other_strategies(
        monkeypatch):
    from keras.src.backend.tensorflow import trainer as tf_trainer

    # Put back after the test: later tests in this process get Keras unpatched.
    monkeypatch.setattr(tf_trainer, "reduce_per_replica", tf_trainer.reduce_per_replica)
    compat.patch_multi_worker_reduction()
    patched = tf_trainer.reduce_per_replica
    assert getattr(patched, "_squeezetime_patched", False)
    compat.patch_multi_worker_reduction()
    assert tf_trainer.reduce_per_replica is patched
    # Not multi-worker: Keras' own reduction (a plain tensor passes through).
    value = tf.constant([1.0, 2.0])
    np.testing.assert_array_equal(
        patched(value, tf.distribute.get_strategy(), "auto").numpy(), [1.0, 2.0])


def test_variable_index_is_the_slot_of_each_variable():
    model = _dense_model()
    optimizer = TorchSGD(0.1, 0.9)
    optimizer.build(model.trainable_variables)
    assert [compat.variable_index(optimizer, v) for v in model.trainable_variables] == [0, 1]


def test_clip_by_global_norm_scales_to_the_norm():
    clipped = compat.clip_by_global_norm([tf.constant([3.0, 0.0]), tf.constant([4.0])], 1.0)
    np.testing.assert_allclose(np.concatenate([np.asarray(c) for c in clipped]),
                               [0.6, 0.0, 0.8], rtol=1e-6)


_TWO_REPLICAS = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_squeezetime.training.optimizer import AdamW, TorchSGD
from keras_squeezetime.training.schedules import WarmupCosineDecay

x = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
y = np.random.default_rng(1).normal(size=(24, 3)).astype("float32") * 100


def optimizer():
    if sys.argv[1] == "sgd":
        return TorchSGD(0.1, 0.9, global_clipnorm=1.0)
    schedule = WarmupCosineDecay(0.1, steps_per_epoch=3, total_epochs=2, warmup_epochs=0.5)
    return AdamW(schedule, weight_decay=0.05, global_clipnorm=1.0)


def one_step(strategy):  # three steps of 8 clips
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        model.compile(optimizer(), "mse")
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), verbose=0)
    return [v.numpy().tolist() for v in model.trainable_variables]


print("RESULT", json.dumps([one_step(tf.distribute.get_strategy()),
                            one_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]))
"""


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_clip_after_all_reduce_on_two_replicas_matches_one_device(optimizer):
    """The summed gradient is clipped, as on one device (Keras clips each replica's half:
    with a clip of 1 and large gradients its step would be twice as long); AdamW's decay
    and step size, computed once a step, act once per step on two replicas too."""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _TWO_REPLICAS, optimizer], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(out_line for out_line in run.stdout.splitlines()
                if out_line.startswith("RESULT "))
    one, two = json.loads(line[len("RESULT "):])
    for a, b in zip(one, two):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
