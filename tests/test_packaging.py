"""setup.cfg: the wheel a user installs holds every module and data file, and builds cleanly.

The tree maps `training/` and `tflite/` into the package (`package_dir`) and ships the
class lists as data, so an editable install (what the suite runs on) can hide a module
or a file a built wheel would lack. Here a wheel is built from a copy of the sources,
installed into a folder of its own, and read from there.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from keras_squeezetime.worker_imports import LIGHT_IMPORT_ENV

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Source folder -> where its files sit in the installed package.
PACKAGE_DIRS = {"keras_squeezetime": "keras_squeezetime",
                "training": "keras_squeezetime/training",
                "tflite": "keras_squeezetime/tflite"}


def _run(*command: str, cwd: pathlib.Path, env: dict | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout + result.stderr


def test_the_wheel_holds_every_module_and_class_list_and_builds_without_warnings(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in PACKAGE_DIRS:
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # No build isolation: that would download setuptools (the test extra installs it).
    log = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "-w", str(tmp_path / "dist"), ".", cwd=source)
    # setuptools warns of a folder it finds importable but is not told to package (it
    # would be left out of the wheel in time).
    assert "absent from the `packages` configuration" not in log, log[-3000:]

    wheel, = (tmp_path / "dist").glob("keras_squeezetime-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{PACKAGE_DIRS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder in PACKAGE_DIRS
                for path in (ROOT / folder).rglob("*")
                if path.suffix in (".py", ".txt") and "__pycache__" not in path.parts}
    assert len(expected) > 100 and "keras_squeezetime/class_lists/hmdb51.txt" in expected
    assert not expected - names, sorted(expected - names)

    # Installed on its own (no sources beside it), the package reads its class lists.
    target = tmp_path / "installed"
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         str(wheel), cwd=tmp_path)
    code = ("import keras_squeezetime as kst; print(kst.__file__); "
            "print(*(len(kst.load_labels(n)) for n in ('kinetics400', 'kinetics600', 'hmdb51')))")
    env = {**os.environ, "PYTHONPATH": str(target), LIGHT_IMPORT_ENV: "1"}
    module_file, counts = _run(sys.executable, "-c", code, cwd=tmp_path,
                               env=env).strip().splitlines()[-2:]
    assert module_file.startswith(str(target)), module_file
    assert counts == "400 600 51"
