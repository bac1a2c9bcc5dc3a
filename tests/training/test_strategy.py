"""`strategy.make_strategy`: strategies by name, and what a one-device mirrored run says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keras_squeezetime.training.strategy import make_strategy
from keras_squeezetime.training.train_config import SetupError


def test_mirrored_on_one_device_warns_that_it_has_a_single_replica():
    # A fresh process: this one may have split its CPU into logical devices already.
    code = ("from keras_squeezetime.training.strategy import make_strategy; "
            "print(make_strategy('mirrored').num_replicas_in_sync)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    if result.stdout.strip().splitlines()[-1] != "1":
        pytest.skip("this machine has several devices")
    assert "--strategy mirrored found one device" in result.stderr
    assert "split the CPU into logical devices" in result.stderr


def test_bad_names_and_a_missing_cluster_are_named(monkeypatch):
    with pytest.raises(ValueError, match=r"Unknown strategy 'mirror'; choose one of default"):
        make_strategy("mirror")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # SetupError: what squeezetime-train says in one line, without a traceback.
    with pytest.raises(SetupError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")


def test_a_tpu_that_cannot_be_resolved_is_a_setup_error():
    """Resolving a TPU name asks Google's servers: unreachable here, or unknown with them."""
    with pytest.raises(SetupError) as raised:
        make_strategy("tpu", "squeezetime-no-such-tpu")
    message = str(raised.value)
    assert message.startswith("--strategy tpu: cannot reach TPU 'squeezetime-no-such-tpu': ")
    assert "\n" not in message
