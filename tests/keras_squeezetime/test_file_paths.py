"""Local and remote (tf.io.gfile) paths answer the same questions."""

from __future__ import annotations

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
