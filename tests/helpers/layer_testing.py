"""`run_layer_test`: what every SqueezeTime layer must do, checked one way for all of them."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict[str, Any],
    input_data: np.ndarray | Sequence[np.ndarray],
    expected_output_shape: Sequence[int | None] | None = None,
    expect_trainable: bool = True,
    atol: float = 1e-6,
) -> keras.layers.Layer:
    """Checks a layer the keras-hub way; returns the built layer.

    - registered as `keras_squeezetime>ClassName`;
    - `get_config` round trip: the deserialised clone has the same config and, given the
      same weights, the same output (inference mode);
    - the output has `expected_output_shape` and `compute_output_shape` agrees with it;
    - one SGD step on a model around it changes every trainable weight (nothing is
      accidentally frozen or disconnected from the output), when `expect_trainable`.

    Args:
      layer_cls: the layer class.
      init_kwargs: its constructor arguments.
      input_data: the input array, or a sequence of arrays for a layer of several inputs.
      expected_output_shape: the output shape; None skips the check.
      expect_trainable: whether the layer has trainable weights the step must change.
      atol: tolerance of the clone's output.
    """
    assert keras.saving.get_registered_name(layer_cls) == f"keras_squeezetime>{layer_cls.__name__}"
    inputs = [np.asarray(x, np.float32) for x in
              (input_data if isinstance(input_data, (list, tuple)) else [input_data])]
    layer = layer_cls(**init_kwargs)
    output = np.asarray(layer(*inputs, training=False) if _takes_training(layer)
                        else layer(*inputs))
    if expected_output_shape is not None:
        assert output.shape == tuple(expected_output_shape), (output.shape, expected_output_shape)
        if len(inputs) == 1:
            computed = tuple(layer.compute_output_shape(inputs[0].shape))
            assert computed == tuple(expected_output_shape), (computed, expected_output_shape)

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is layer_cls and clone.get_config() == layer.get_config()
    _call(clone, inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(_call(clone, inputs)), np.asarray(_call(layer, inputs)),
                               rtol=atol, atol=atol)

    if expect_trainable:
        _assert_one_step_moves_every_weight(layer_cls, init_kwargs, inputs)
    return layer


def _takes_training(layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters


def _call(layer, inputs):
    return layer(*inputs, training=False) if _takes_training(layer) else layer(*inputs)


def _assert_one_step_moves_every_weight(layer_cls, init_kwargs, inputs) -> None:
    keras_inputs = [keras.Input(x.shape[1:], batch_size=x.shape[0]) for x in inputs]
    layer = layer_cls(**init_kwargs)
    model = keras.Model(keras_inputs, layer(*keras_inputs))
    target = np.random.default_rng(0).normal(size=model.output_shape).astype(np.float32)
    before = [np.asarray(w) for w in layer.trainable_weights]
    assert before, f"{layer_cls.__name__} has no trainable weights"
    # Adam's step does not scale with the gradient: a bias feeding a batch norm gets only
    # a rounding-sized gradient (zero in exact arithmetic), which SGD moves by less than
    # the bias' float spacing; a weight the loss does not reach gets exactly zero and stays.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], target)
    frozen = [w.path for w, old in zip(layer.trainable_weights, before)
              if np.array_equal(np.asarray(w), old)]
    assert not frozen, f"one training step left these weights unchanged: {frozen}"
