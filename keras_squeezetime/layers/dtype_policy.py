"""Layers holding sub-layers: one dtype policy for all, and quantised sub-layers that load back.

Sub-layers take their parent's dtype policy (a mixed precision policy reaches every
convolution), as Keras' own composite layers do. `Model.quantize` quantises leaf layers
in place (the `Dense` layers inside `TemporalFocus` and the head), giving each its own
quantised policy; a composite layer recreates its sub-layers from its own config, so
without more they would come back unquantised and their saved variables (kernel and
scale) would not fit.

Keras' documented answer is a `DTypePolicyMap` of absolute layer paths as the parent's
`dtype`, handed down to the sub-layers, which look their path up once built. Two things
make that fragile here: the absolute paths depend on the name scope the model was built
in, and a Keras 3.15 `Dense` holding a map saves no int8 variables (it reads the map's
default policy, not its own entry), so a loaded model could not be saved again. So the
map a `CompositeLayer` saves holds paths *relative to the layer* (`"ctl/temporal_focus/fc1"`),
and each sub-layer is created with its own concrete policy (`sublayer_dtype`); a nested
composite gets the map of its own part.
"""

from __future__ import annotations

from typing import Any

import keras

_PolicyMap = keras.dtype_policies.DTypePolicyMap


class CompositeLayer(keras.layers.Layer):
    """Base of the SqueezeTime layers that hold sub-layers.

    Create every sub-layer with `dtype=self.sublayer_dtype(name)` (`name` the sub-layer's
    `name`), and call `super().get_config()` in `get_config`.

    Args:
      **kwargs: `keras.layers.Layer` arguments. `dtype` may be a `DTypePolicyMap` of
        quantised sub-layers by relative path (what `get_config` saves after
        `Model.quantize`); its default policy is the layer's own.
    """

    def __init__(self, **kwargs) -> None:
        policy = kwargs.get("dtype")
        quantized: dict[str, Any] = {}
        if isinstance(policy, _PolicyMap):
            quantized = {path: policy[path] for path in policy}
            kwargs = {**kwargs, "dtype": policy.default_policy}
        super().__init__(**kwargs)
        self._quantized_sublayers = quantized

    def sublayer_dtype(self, name: str) -> keras.DTypePolicy:
        """The dtype policy to create the sub-layer called `name` with.

        Args:
          name: the sub-layer's name (its path relative to this layer).

        Returns:
          This layer's policy; the quantised policy the sub-layer was saved with; or, for
          a sub-layer holding quantised sub-layers of its own, a map of those.
        """
        prefix = f"{name}/"
        nested = {path[len(prefix):]: policy for path, policy in self._quantized_sublayers.items()
                  if path.startswith(prefix)}
        if nested:
            return _PolicyMap(default_policy=self.dtype_policy, policy_map=nested)
        return self._quantized_sublayers.get(name, self.dtype_policy)

    def get_config(self):
        config = super().get_config()
        prefix = f"{self.path}/"
        quantized = {sub.path[len(prefix):]: sub.dtype_policy
                     for sub in self._flatten_layers(include_self=False)
                     if sub.quantization_mode is not None and sub.path
                     and sub.path.startswith(prefix)}
        if quantized:
            config["dtype"] = keras.dtype_policies.serialize(
                _PolicyMap(default_policy=self.dtype_policy, policy_map=quantized))
        return config
