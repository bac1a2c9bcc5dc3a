"""Old home of the weight loader, kept for callers not yet moved to the new names.

`load_weights` is `weights.initialise.initialise_weights` (what the builder's `weights=`
and `model_loading.load_weights_into` run) and `load_preset_state_dict` lives there too.
"""

from keras_squeezetime.weights.initialise import initialise_weights as load_weights
from keras_squeezetime.weights.initialise import load_preset_state_dict

__all__ = ["load_preset_state_dict", "load_weights"]
