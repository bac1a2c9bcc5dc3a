"""`strategy.make_strategy`: strategies by name, and what a one-device mirrored run says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keras_squeezetime.training.strategy import make_strategy


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
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")
