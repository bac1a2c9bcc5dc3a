"""The package's public names; importing it registers the layers; workers stay light."""

from __future__ import annotations

import os
import subprocess
import sys

import keras_squeezetime
from keras_squeezetime import SqueezeTime
from keras_squeezetime.worker_imports import LIGHT_IMPORT_ENV


def _python(code: str, **env) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_public_names_resolve():
    for name in keras_squeezetime.__all__:
        assert getattr(keras_squeezetime, name) is not None, name


def test_import_registers_layers_for_load_model(tmp_path):
    path = tmp_path / "m.keras"
    SqueezeTime(input_shape=(2, 32, 32, 3), width_multiplier=0.25, num_classes=2).save(path)
    code = ("import keras, keras_squeezetime; "
            f"print(keras.saving.load_model({str(path)!r}, safe_mode=True).output_shape[-1])")
    assert _python(code)[-1] == "2"


def test_worker_import_does_not_load_tensorflow():
    # Data-preparation workers import the package; TensorFlow would cost seconds each.
    code = ("import sys, keras_squeezetime, keras_squeezetime.training.annotations; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert _python(code, **{LIGHT_IMPORT_ENV: "1"}) == ["False", "False"]


def test_presets_are_listed_from_the_package_in_a_fresh_process():
    code = ("import keras_squeezetime as kst; print(*kst.list_presets()); "
            "print(sorted(kst.presets.PRESETS) == kst.list_presets())")
    assert _python(code)[-5:] == ["hmdb51", "imagenet", "kinetics400", "kinetics600", "True"]
    assert {"presets", "list_presets"} <= set(keras_squeezetime.__all__)
