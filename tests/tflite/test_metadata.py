"""Labels and settings embedded in a flatbuffer, and the labels file beside it."""

from __future__ import annotations

import os

import pytest

import tensorflow as tf


@pytest.fixture(scope="module")
def model_bytes():
    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def serve(x):
        return tf.nn.relu(x)

    return tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()]).convert()


def test_embed_and_read_back(model_bytes):
    from keras_squeezetime.tflite import metadata

    assert metadata.read_metadata(model_bytes) == (None, {})
    embedded = metadata.embed(model_bytes, ["walk", "run"], {"frame_interval": 4, "a": [1]})
    assert metadata.read_metadata(embedded) == (["walk", "run"], {"a": [1], "frame_interval": 4})
    # Embedding again replaces the entries, it does not add a second copy.
    again = metadata.embed(embedded, None, {"frame_interval": 2})
    assert metadata.read_metadata(again) == (["walk", "run"], {"frame_interval": 2})
    with pytest.raises(ValueError, match="single lines"):
        metadata.embed(model_bytes, ["two\nlines"], {})


def test_labels_file_beside_the_model(tmp_path):
    from keras_squeezetime.tflite import metadata

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    path = metadata.write_labels_beside(model, ["a", "b"])
    assert path == str(tmp_path / "m.labels.txt") == metadata.labels_path_for(model)
    assert open(path).read() == "a\nb\n"
    # A normal file mode (0666 less the umask), as the model's: mkstemp would give 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
