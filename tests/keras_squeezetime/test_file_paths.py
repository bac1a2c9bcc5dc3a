"""Local and remote (tf.io.gfile) paths answer the same questions; writes are atomic."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

from keras_squeezetime import file_paths


def test_local_paths(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"x")
    folder = str(tmp_path / "run")
    assert file_paths.isdir(folder) and file_paths.exists(folder)
    assert file_paths.exists(file_paths.join(folder, "model.keras"))
    assert not file_paths.exists(file_paths.join(folder, "config.json"))
    assert not file_paths.isdir(file_paths.join(folder, "model.keras"))


def test_remote_paths_go_through_gfile():
    # TensorFlow's in-memory file system stands in for gs:// (no network in tests).
    folder = "ram://file_paths_test/run"
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(f"{folder}/model.weights.h5", "wb") as handle:
        handle.write(b"x")
    assert file_paths.is_remote(folder) and not file_paths.is_remote("/tmp/run")
    assert file_paths.join(folder + "/", "model.weights.h5") == f"{folder}/model.weights.h5"
    assert file_paths.exists(file_paths.join(folder, "model.weights.h5"))
    assert not file_paths.exists(file_paths.join(folder, "config.json"))
    assert file_paths.isdir(folder)


def test_text_written_atomically_with_an_ordinary_mode(tmp_path):
    path = str(tmp_path / "new" / "config.json")
    file_paths.write_text(path, "naïve\n")  # the folder is made
    assert file_paths.read_text(path) == "naïve\n"
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert file_paths.parent(path) == str(tmp_path / "new")


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "report.json")
    file_paths.write_text(path, "old")
    with pytest.raises(RuntimeError):
        with file_paths.replaced_atomically(path, suffix=".json") as temporary:
            assert temporary.endswith(".json") and os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "w") as handle:
                handle.write("half")
            raise RuntimeError("interrupted")
    assert file_paths.read_text(path) == "old" and os.listdir(tmp_path) == ["report.json"]


def test_remote_text_round_trip():
    path = "ram://file_paths_test/written/config.json"
    file_paths.write_text(path, "{}\n")
    assert file_paths.read_text(path) == "{}\n"
    assert file_paths.parent(path) == "ram://file_paths_test/written"
    assert tf.io.gfile.listdir("ram://file_paths_test/written") == ["config.json"]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
