"""Distributed training for real: MirroredStrategy on 2 logical CPUs, and two worker
processes on localhost under MultiWorkerMirroredStrategy, each compared step by step with
one device doing the same arithmetic.

Like for like: every replica sees exactly the 8 clips the single device sees (one shard of
8 clips; mirrored reads it twice per global batch of 16, each worker reads its own copy of
it), with the same absolute learning rate (`--lr` per 64 clips is halved for the doubled
global batch). Batch norm is per replica, so each replica's statistics are the single
device's. The clips are exactly reproducible: 12 stored frames sampled 4 x every 3rd leave
one temporal offset, and `--noaugment --nohflip` leaves the centre crop.

Float64: in float32 two runs whose batch-norm sums are taken in another order (the same
8 clips shuffled differently, which the replicas' halves of a global batch are) drift
apart by percents within a few updates, one device against itself included: a training
step of a deep batch-normalised ReLU network turns a 1e-7 change into a 1e-2 change of
the gradient (`benchmarks/replica_drift.py` measures it, for keras.applications.ResNet50
too). In float64 the same amplification leaves rounding far below 1e-4, so a difference
there is a real per-replica behaviour (loss scaling, clipping before the all-reduce, lr
multipliers, per-replica batch norm), which is what these tests are for.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime.training.records import make_sequence_example

COMMON_FLAGS = [
    "--num-classes=4", "--frames=4", "--frame-interval=3", "--image-size=32", "--short-side=32",
    "--width-multiplier=0.25", "--steps-per-epoch=1", "--epochs=3",
    "--noaugment", "--nohflip", "--dropout-rate=0", "--deterministic", "--seed=3",
    "--optimizer=sgd", "--warmup-epochs=0", "--backbone-lr-multiplier=0.5", "--data-threads=1",
]
# The same absolute learning rate, 0.05: lr per 64 clips x batch / 64.
SINGLE_FLAGS = ["--batch-size=8", "--lr=0.4"]
DISTRIBUTED_FLAGS = ["--batch-size=16", "--lr=0.2"]

# Runs `squeezetime-train` in float64 (see the module doc), optionally on 2 logical CPUs.
_RUNNER = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    if sys.argv.pop(1) == "two-cpus":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    keras.config.set_floatx("float64")
    from keras_squeezetime.training.cli import train
    train.run()
    """
)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, str]:
    """Two shards holding the same 8 clips (one per worker), and a 20-clip validation shard."""
    root = tmp_path_factory.mktemp("dist_data")
    rng = np.random.default_rng(0)
    tints = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])

    def clips(count: int) -> list[bytes]:
        serialized = []
        for i in range(count):
            label = i % 4
            frames = rng.integers(0, 90, size=(12, 40, 40, 3)) + tints[label] * 0.6
            jpegs = [tf.io.encode_jpeg(f.astype(np.uint8)).numpy() for f in frames]
            serialized.append(make_sequence_example(jpegs, label, media_id=str(i))
                              .SerializeToString())
        return serialized

    def write(path: pathlib.Path, serialized: list[bytes]) -> None:
        path.parent.mkdir(exist_ok=True)
        with tf.io.TFRecordWriter(str(path)) as writer:
            for record in serialized:
                writer.write(record)

    train = clips(8)
    write(root / "train" / "clips-0.tfrecord", train)
    write(root / "train" / "clips-1.tfrecord", train)
    write(root / "val" / "clips-0.tfrecord", clips(20))
    return {
        "one_shard": str(root / "train" / "clips-0.tfrecord"),
        "two_shards": str(root / "train" / "*.tfrecord"),
        "val": str(root / "val" / "*.tfrecord"),
    }


def _runner(devices: str, *flags: str) -> list[str]:
    return [sys.executable, "-c", _RUNNER, devices, *flags]


def _run(devices: str, *flags: str) -> None:
    result = subprocess.run(_runner(devices, *flags), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def _losses(output: pathlib.Path) -> list[float]:
    with open(output / "history.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single_device_losses(records, tmp_path_factory) -> list[float]:
    output = tmp_path_factory.mktemp("single") / "run"
    _run("one-cpu", *COMMON_FLAGS, *SINGLE_FLAGS, f"--train-data={records['one_shard']}",
         f"--output={output}")
    losses = _losses(output)
    assert len(losses) == 3 and np.isfinite(losses).all()
    # The run learns something: the comparisons below are not between frozen models.
    assert len({round(loss, 6) for loss in losses}) == 3
    return losses


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(records, single_device_losses,
                                                         tmp_path):
    output = tmp_path / "mirrored"
    _run("two-cpus", *COMMON_FLAGS, *DISTRIBUTED_FLAGS, "--strategy=mirrored",
         f"--train-data={records['one_shard']}", f"--val-data={records['val']}",
         f"--output={output}")
    config = json.loads((output / "config.json").read_text())
    assert config["num_replicas"] == 2 and config["strategy"] == "mirrored"
    assert config["learning_rate"] == pytest.approx(0.05)
    np.testing.assert_allclose(_losses(output), single_device_losses, rtol=1e-4)


@pytest.mark.slow
def test_two_workers_match_one_device(records, single_device_losses, tmp_path):
    multi = tmp_path / "multi"
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                    "index": index}})
        workers.append(subprocess.Popen(
            _runner("one-cpu", *COMMON_FLAGS, *DISTRIBUTED_FLAGS, "--strategy=multi_worker",
                    f"--train-data={records['two_shards']}", f"--output={multi}"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    try:
        outputs = [worker.communicate(timeout=900) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]

    config = json.loads((multi / "config.json").read_text())
    assert config["num_workers"] == 2 and config["tf_config"]["cluster"] == {"worker": 2}
    np.testing.assert_allclose(_losses(multi), single_device_losses, rtol=1e-4)
