"""One readable line of a TensorFlow error, from errors TensorFlow itself raises."""

from __future__ import annotations

import pytest
import tensorflow as tf

from keras_squeezetime.training.tf_errors import tf_error_text


def test_eager_error_loses_the_op_decoration(tmp_path):
    missing = str(tmp_path / "missing.tfrecord")
    with pytest.raises(tf.errors.NotFoundError) as raised:
        next(iter(tf.data.TFRecordDataset(missing)))
    assert tf_error_text(raised.value) == f"{missing}; No such file or directory"


def test_error_inside_a_traced_step_gives_the_ops_message(tmp_path):
    """As `model.fit` raises it: "Graph execution error:" and where the op was defined
    come first, the op's own message after them."""
    missing = str(tmp_path / "missing.tfrecord")
    records = iter(tf.data.TFRecordDataset(missing))

    @tf.function
    def step(iterator):
        return next(iterator)

    with pytest.raises(tf.errors.NotFoundError) as raised:
        step(records)
    assert raised.value.message.startswith("Graph execution error:")
    assert tf_error_text(raised.value) == f"{missing}; No such file or directory"
