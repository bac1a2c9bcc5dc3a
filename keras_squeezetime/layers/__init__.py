"""SqueezeTime layers. Each is registered under the `keras_squeezetime` package."""

from keras_squeezetime.layers.bottleneck import CTLBottleneck
from keras_squeezetime.layers.ctl import ChannelTimeLearning
from keras_squeezetime.layers.head import ClassificationHead
from keras_squeezetime.layers.interaction import InterTemporalInteraction
from keras_squeezetime.layers.normalization import VideoNormalization
from keras_squeezetime.layers.positional import PositionalEmbedding
from keras_squeezetime.layers.spatial_bias import SpatialBias
from keras_squeezetime.layers.squeeze import TimeToChannel
from keras_squeezetime.layers.temporal_focus import TemporalFocus

__all__ = [
    "CTLBottleneck",
    "ChannelTimeLearning",
    "ClassificationHead",
    "InterTemporalInteraction",
    "PositionalEmbedding",
    "SpatialBias",
    "TemporalFocus",
    "TimeToChannel",
    "VideoNormalization",
]
