"""`tf.distribute` strategy by name: default, mirrored, multi_worker, tpu.

- `default`: one device (`tf.distribute.get_strategy()`).
- `mirrored`: all local GPUs (or the logical CPU devices a test creates), synchronous.
- `multi_worker`: `MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG`,
  which every worker sets with its own `task.index` (see docs/distributed.md).
- `tpu`: follows the TensorFlow TPU guide: resolve the TPU (`tpu` address, or the
  local/Cloud TPU VM when empty), connect, initialise the TPU system, `TPUStrategy`.
"""

from __future__ import annotations

import json
import os

from absl import logging

from keras_squeezetime.training.tf_errors import tf_error_text
from keras_squeezetime.training.train_config import SetupError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", tpu: str = ""):
    """Creates the `tf.distribute.Strategy` `name` (one of `STRATEGIES`); before any model.

    Raises:
      SetupError: `multi_worker` without `TF_CONFIG`, or a TPU that cannot be resolved or
        reached (named, with the reason); squeezetime-train says it in one line.
      ValueError: an unknown `name`.
    """
    import tensorflow as tf  # deferred: CLIs import STRATEGIES to check flags fast

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        if strategy.num_replicas_in_sync == 1:
            # Not an error (the run is right), but not what the flag promises either.
            logging.warning(
                "--strategy mirrored found one device (%s): the run has a single replica. "
                "On a machine without GPUs, split the CPU into logical devices to try it; "
                "see docs/distributed.md.", strategy.extended.worker_devices[0])
        return strategy
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise SetupError(
                "--strategy multi_worker needs the TF_CONFIG environment variable (cluster "
                "addresses and this worker's task index); see docs/distributed.md."
            )
        # Ring all-reduce works on CPUs and GPUs alike; NCCL is picked automatically on GPUs.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        # Resolving a TPU name asks the Cloud TPU API (socket and URL errors: OSError); no
        # name off a TPU VM is a ValueError; connecting and initialising fail as tf.errors.
        except (OSError, ValueError, tf.errors.OpError) as error:
            which = f"TPU {tpu!r}" if tpu else "a local TPU (no --tpu given)"
            raise SetupError(f"--strategy tpu: cannot reach {which}: "
                             f"{tf_error_text(error)}") from error
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def is_chief(strategy) -> bool:
    """True on the process that writes the outputs: the chief, else worker 0, else the only one."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def num_workers(strategy) -> int:
    """Number of worker processes taking part (1 unless multi-worker)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from keras_squeezetime.training import compat

        return compat.num_workers(strategy)
    return 1


def task_summary() -> dict:
    """`TF_CONFIG`'s cluster size and this task, for logs and `config.json` (or {})."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}
    config = json.loads(raw)
    cluster = config.get("cluster", {})
    return {
        "cluster": {job: len(tasks) for job, tasks in cluster.items()},
        "task": config.get("task", {}),
    }
