"""Classification head: global average pool, dropout, linear, activation."""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

from keras_squeezetime.layers.dtype_policy import CompositeLayer


@keras.saving.register_keras_serializable(package="keras_squeezetime")
class ClassificationHead(CompositeLayer):
    """mmaction's `I2DHead`: GAP -> Dropout -> Linear -> `activation`.

    `activation` is applied in `call` from the attribute, so tools that set
    `head.activation = keras.activations.linear` (tf-keras-vis) get logits.

    Under a mixed precision policy the pooling and the linear layer run in the compute
    dtype, but the activation takes float32 logits and the output is float32, as Keras'
    mixed precision guide asks of a model's output (a float16 softmax is inexact).

    Args:
      num_classes: number of classes (outputs).
      dropout_rate: dropout before the linear layer, in training only.
      activation: activation of the logits: a name, a callable, or `None` for logits.
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...); the sub-layers
        share the head's dtype policy.
    """

    def __init__(
        self,
        num_classes: int,
        dropout_rate: float = 0.5,
        activation: str | Callable | None = "softmax",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.dropout_rate = float(dropout_rate)
        self.activation = keras.activations.get(activation)
        self.dropout = keras.layers.Dropout(self.dropout_rate,
                                            dtype=self.sublayer_dtype("dropout"), name="dropout")
        self.fc = keras.layers.Dense(
            self.num_classes,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            dtype=self.sublayer_dtype("fc"),
            name="fc",
        )

    def build(self, input_shape):
        self.fc.build((input_shape[0], input_shape[-1]))

    def call(self, inputs, training=None):
        x = ops.mean(inputs, axis=(1, 2))
        x = self.dropout(x, training=training)
        # A no-op in float32; under mixed precision the activation runs in float32.
        return self.activation(ops.cast(self.fc(x), "float32"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def compute_output_spec(self, inputs, training=None):
        # Keras would give the output the compute dtype; `call` returns float32.
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dropout_rate": self.dropout_rate,
            "activation": keras.activations.serialize(self.activation),
        }
