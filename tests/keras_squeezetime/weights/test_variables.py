"""`copy_weights`: variables matched by path, never by order; clear errors; the head rule."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_squeezetime.weights.initialise import initialise_weights
from keras_squeezetime.weights.variables import copy_weights


def _two_dense(order: str, seed: int, head_classes: int | None = None) -> keras.Model:
    """Dense layers 'a' and 'b' of the same shape, applied in `order` ("ab" or "ba")."""
    keras.utils.set_random_seed(seed)
    layers = {name: keras.layers.Dense(4, name=name) for name in order}
    inputs = keras.Input((4,))
    x = inputs
    for name in order:
        x = layers[name](x)
    if head_classes:
        x = keras.layers.Dense(head_classes, name="head")(x)
    return keras.Model(inputs, x, name=f"model_{order}")


def test_same_shaped_variables_in_another_order_land_by_path(tmp_path):
    source, target = _two_dense("ab", seed=1), _two_dense("ba", seed=2)
    # Same paths and shapes, other order: pairing by position would swap a and b.
    assert [v.path for v in source.weights] == ["a/kernel", "a/bias", "b/kernel", "b/bias"]
    assert [v.path for v in target.weights] == ["b/kernel", "b/bias", "a/kernel", "a/bias"]
    report = copy_weights(source, target)
    assert sorted(report["loaded"]) == ["a/bias", "a/kernel", "b/bias", "b/kernel"]
    for name in "ab":
        np.testing.assert_array_equal(target.get_layer(name).kernel, source.get_layer(name).kernel)
    # The same through a .keras file, the path the builder's `weights=` takes.
    fresh = _two_dense("ba", seed=3)
    source.save(tmp_path / "source.keras")
    initialise_weights(fresh, tmp_path / "source.keras")
    for name in "ab":
        np.testing.assert_array_equal(fresh.get_layer(name).kernel, source.get_layer(name).kernel)


def test_missing_extra_and_misshaped_variables_are_named():
    source = _two_dense("ab", seed=1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(5, name="b")(
        keras.layers.Dense(4, name="c")(inputs)), name="other")
    with pytest.raises(ValueError) as error:
        copy_weights(source, other)
    message = str(error.value)
    assert message.startswith("Cannot copy the weights of model_ab (the source) into other")
    assert "missing in the source (2): c/kernel, c/bias" in message
    assert "not in the target (2): a/kernel, a/bias" in message
    assert "b/kernel: source (4, 4), target (4, 5)" in message


def test_a_head_of_other_classes_is_left_fresh_or_refused():
    source, target = _two_dense("ab", 1, head_classes=3), _two_dense("ab", 2, head_classes=5)
    fresh_head = np.asarray(target.get_layer("head").kernel)
    with pytest.warns(UserWarning, match=r"head \(head/bias \(3,\), head/kernel \(4, 3\)\) "
                                         r"does not fit"):
        report = copy_weights(source, target)
    assert report["skipped"] == ["head/bias", "head/kernel"]
    np.testing.assert_array_equal(target.get_layer("head").kernel, fresh_head)
    np.testing.assert_array_equal(target.get_layer("a").kernel, source.get_layer("a").kernel)
    with pytest.raises(ValueError, match="does not fit"):
        copy_weights(source, _two_dense("ab", 3, head_classes=5), allow_new_head=False)
    # A backbone takes the backbone of a classifier; the source head is not needed.
    backbone = _two_dense("ab", 4)
    assert copy_weights(source, backbone)["skipped"] == ["head/bias", "head/kernel"]
