"""Conversion guards: builtin ops only."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")


def test_op_without_builtin_kernel_is_named_not_sent_to_flex(tmp_path):
    """The converter may only use builtins: an op that would need Flex fails, naming the op."""
    from keras_squeezetime.tflite.export import UnsupportedOpsError, _convert

    @tf.function(input_signature=[tf.TensorSpec((1, 4, 4), tf.float32, name="video")])
    def serve(video):
        return {"probabilities": tf.linalg.inv(video + 4.0 * tf.eye(4))}

    module = tf.Module()
    module.serve = serve
    saved = str(tmp_path / "saved_model")
    tf.saved_model.save(module, saved, signatures={"serving_default": serve})
    with pytest.raises(UnsupportedOpsError, match="MatrixInverse"):
        _convert(saved, "float32", "float32", None, False, ())
