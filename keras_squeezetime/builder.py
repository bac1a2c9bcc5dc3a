"""The `SqueezeTime` model builder, in the style of `keras.applications`."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable, Sequence

import keras

from keras_squeezetime import architecture as arch
from keras_squeezetime import presets
from keras_squeezetime.layers import (
    ClassificationHead,
    CTLBottleneck,
    TimeToChannel,
    VideoNormalization,
)
from keras_squeezetime.layers.batch_norm import kaiming_fan_out, official_batch_norm
from keras_squeezetime.model_config import DEFAULT_FRAMES, DEFAULT_IMAGE_SIZE
from keras_squeezetime.weights.initialise import initialise_weights

# Classes of the head when neither `num_classes` nor `classes` is given (Kinetics-400).
DEFAULT_CLASSES = 400
# The official checkpoints' heads were trained through a softmax: their outputs are
# logits of one distribution, which another activation would misread.
_PRETRAINED_HEAD_KEY = "fc.weight"
# The builder's layers are channels last whatever `keras.config.image_data_format()` says.
_CHANNELS_LAST = "channels_last"


def SqueezeTime(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int] | None = None,
    pooling: str | None = None,
    num_classes: int | None = None,
    classifier_activation: str | Callable | None = "softmax",
    dropout_rate: float = 0.5,
    width_multiplier: float = 1.0,
    pos_embed_sizes: Sequence[int] = arch.DEFAULT_POS_EMBED_SIZES,
    include_preprocessing: bool = True,
    name: str = "squeezetime",
    classes: int | None = None,
) -> keras.Model:
    """Builds SqueezeTime (Zhai et al., 2024), depth 50, numerically the official model.

    The clip's time axis is squeezed into channels (`c * T + t`), a 5x5 stride-2
    stem and max pool follow, then four stages of CTL bottleneck blocks
    (`[3, 4, 6, 3]` blocks, strides `[1, 2, 2, 2]`) and, with `include_top`, the
    mmaction `I2DHead` (GAP, dropout, linear).

    The model is channels last (clips `(batch, frames, height, width, 3)`) whatever
    `keras.config.image_data_format()` says. It takes the global dtype policy
    (`keras.mixed_precision.set_global_policy`), as `keras.applications` models do;
    under a mixed policy the head's output is float32.

    Two backbones cannot be built on one `input_tensor`: their layers have the same
    names (`"normalization"`, ...), which one functional model cannot hold. Build each
    on its own input and call them as layers instead::

        clip = keras.Input((16, 224, 224, 3))
        a = SqueezeTime(include_top=False, pooling="avg", name="a")
        b = SqueezeTime(include_top=False, pooling="avg", name="b")
        features = keras.layers.Concatenate()([a(clip), b(clip)])

    Args:
      include_top: add the classification head.
      weights: `None` (random initialisation), a preset name (`"kinetics400"`,
        `"kinetics600"`, `"hmdb51"`, `"imagenet"` for the ImageNet-1K backbone), or a
        path (`str` or `os.PathLike`) to an official `.pth` checkpoint, a `.weights.h5`
        or a `.keras` file.
      input_tensor: optional Keras tensor (the output of `keras.Input`, or of a layer)
        to use as the model input; its shape without the batch axis is the input shape.
      input_shape: `(frames, height, width, 3)`, default `(16, 224, 224, 3)`.
        Any static size the official model accepts: height and width of at least
        29 px. The stem and pool round up and the stages' 2x2 downsampling rounds down,
        as the official model does: multiples of 32 give exact `h/32` feature maps,
        112 gives 3x3, 286 (HMDB51's test size) gives 9x9.
      pooling: with `include_top=False`, `None` returns the feature map
        `(batch, h', w', 2048 * width_multiplier)` (`h' = h/32` for multiples of 32),
        `"avg"` or `"max"` a vector. Ignored with `include_top=True` (the head pools by
        average), as in `keras.applications`; a value other than these three is an
        error either way.
      num_classes: classes of the head (a positive integer), default 400. When it
        differs from the loaded checkpoint's head, the backbone is loaded and the head
        is left fresh; a `.weights.h5` needs its run's `config.json` beside it for that
        (the file alone does not say which model it was saved from). Ignored with
        `include_top=False`, but must then still be `None` or a positive integer.
      classifier_activation: activation of the head: a name, a callable, or `None`
        for logits. Ignored with `include_top=False`. With a head loaded from an
        official checkpoint (a preset or `.pth` of the model's class count) only
        `"softmax"` and `None` are allowed, as in `keras.applications`: those heads
        were trained through a softmax. A fresh head (another class count) and heads
        from `.keras`/`.weights.h5` files take any activation.
      dropout_rate: dropout before the head's linear layer, in [0, 1).
      width_multiplier: channel width factor (paper Table 5: 0.5 to 1.25).
      pos_embed_sizes: side of the learned positional embedding of each stage (4
        positive integers); the official checkpoints use `(56, 28, 14, 7)`.
      include_preprocessing: take RGB pixels in [0, 255] and normalise inside the
        model; `False` takes input already normalised as `preprocess_input` does.
      name: model name.
      classes: `keras.applications`' name for `num_classes`; give either (or both
        equal).

    Returns:
      A functional `keras.Model`.

    Raises:
      ValueError: an argument out of its range or of the wrong type, named with what
        was expected; `classes` and `num_classes` that differ; an activation other than
        softmax or `None` on an official checkpoint's head; weights that do not fit.
    """
    input_shape = _validate_input_shape(input_shape, input_tensor)
    pos_embed_sizes = _validate_pos_embed_sizes(pos_embed_sizes)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}.")
    _validate_width_multiplier(width_multiplier)
    num_classes = _resolve_classes(num_classes, classes, include_top)
    if include_top:
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real) \
                or not 0 <= dropout_rate < 1:
            raise ValueError(f"dropout_rate must be a number in [0, 1); got {dropout_rate!r}.")
        classifier_activation = keras.activations.get(classifier_activation)
        if weights is not None and not _softmax_or_logits(classifier_activation) and \
                _loads_official_head(weights, num_classes):
            # Refused before the download; a .pth is checked once read (below).
            raise _pretrained_activation_error(weights, classifier_activation)

    inputs = keras.Input(shape=input_shape, name=arch.INPUT_NAME) if input_tensor is None \
        else input_tensor

    x = inputs
    if include_preprocessing:
        x = VideoNormalization(name=arch.NORMALIZATION)(x)
    x = TimeToChannel(name=arch.SQUEEZE)(x)

    # Explicit symmetric padding: Keras "same" pads stride-2 layers asymmetrically.
    stem_channels = arch.scaled_channels(arch.STEM_CHANNELS, width_multiplier)
    x = keras.layers.ZeroPadding2D(2, data_format=_CHANNELS_LAST, name=arch.STEM_PAD)(x)
    x = keras.layers.Conv2D(
        stem_channels, 5, strides=2, use_bias=False, kernel_initializer=kaiming_fan_out(),
        data_format=_CHANNELS_LAST, name=arch.STEM_CONV,
    )(x)
    x = official_batch_norm(arch.STEM_BN)(x)
    x = keras.layers.ReLU(name=arch.STEM_RELU)(x)
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, >= 0.
    x = keras.layers.ZeroPadding2D(1, data_format=_CHANNELS_LAST, name=arch.POOL_PAD)(x)
    x = keras.layers.MaxPooling2D(3, strides=2, data_format=_CHANNELS_LAST, name=arch.POOL)(x)

    for stage, (planes, stride, pos) in enumerate(
        zip(arch.STAGE_PLANES, arch.STAGE_STRIDES, pos_embed_sizes), start=1
    ):
        for block, block_name in enumerate(arch.stage_block_names(stage)):
            x = CTLBottleneck(
                arch.scaled_channels(planes, width_multiplier),
                pos_embed_size=pos,
                strides=stride if block == 0 else 1,
                name=block_name,
            )(x)

    if include_top:
        x = ClassificationHead(
            num_classes, dropout_rate=dropout_rate, activation=classifier_activation,
            name=arch.HEAD,
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=_CHANNELS_LAST, name=arch.AVG_POOL)(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=_CHANNELS_LAST, name=arch.MAX_POOL)(x)

    model_inputs = (keras.utils.get_source_inputs(input_tensor) if input_tensor is not None
                    else inputs)
    model = keras.Model(model_inputs, x, name=name)

    if weights is not None:
        # The builder passes itself: a .weights.h5 may need its own model built first.
        report = initialise_weights(model, weights, build_model=SqueezeTime)
        if include_top and not _softmax_or_logits(classifier_activation) and \
                _PRETRAINED_HEAD_KEY in report.get("loaded", ()):
            raise _pretrained_activation_error(weights, classifier_activation)
    return model


def _resolve_classes(num_classes: Any, classes: Any, include_top: bool) -> int | None:
    """The head's class count from `num_classes` or its `keras.applications` name `classes`."""
    if classes is not None and num_classes is not None and classes != num_classes:
        raise ValueError(
            f"classes and num_classes are one argument (classes is keras.applications' "
            f"name for it); got classes={classes!r} and num_classes={num_classes!r}: give one.")
    argument, value = ("classes", classes) if classes is not None else ("num_classes",
                                                                        num_classes)
    if value is None:
        return DEFAULT_CLASSES if include_top else None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{argument} must be an integer; got {value!r} "
                         f"({type(value).__name__}).")
    if value < 1:
        raise ValueError(f"{argument} must be at least 1; got {value}.")
    return int(value)


def _softmax_or_logits(activation: Callable) -> bool:
    return activation in (keras.activations.softmax, keras.activations.linear)


def _loads_official_head(weights: str | os.PathLike, num_classes: int) -> bool:
    """Whether `weights` is a preset whose head the model will load (same class count)."""
    preset = presets.PRESETS.get(os.fspath(weights)) if isinstance(weights, (str, os.PathLike)) \
        else None
    return preset is not None and preset.get("num_classes") == num_classes


def _pretrained_activation_error(weights: str | os.PathLike, activation: Callable) -> ValueError:
    name = getattr(activation, "__name__", repr(activation))
    return ValueError(
        f"classifier_activation must be 'softmax' or None with the head of the pretrained "
        f"weights {os.fspath(weights)!r} (trained through a softmax), as in "
        f"keras.applications; got {name!r}. Pass another num_classes to start a fresh head "
        f"with this activation, or take logits (None) and apply it yourself.")


def _validate_width_multiplier(width_multiplier: Any) -> None:
    narrowest = min(arch.STEM_CHANNELS, *arch.STAGE_PLANES)
    if isinstance(width_multiplier, bool) or not isinstance(width_multiplier, numbers.Real) \
            or not math.isfinite(width_multiplier):
        raise ValueError(f"width_multiplier must be a number (e.g. 0.5); got "
                         f"{width_multiplier!r} ({type(width_multiplier).__name__}).")
    if not width_multiplier * narrowest >= 1:
        raise ValueError(
            f"width_multiplier must be at least 1/{narrowest} = {1 / narrowest} (narrower "
            f"leaves the stem and stage 1 without channels); got {width_multiplier}.")


def _validate_pos_embed_sizes(pos_embed_sizes: Any) -> tuple[int, ...]:
    stages = len(arch.STAGE_BLOCKS)
    try:  # a string is a sequence too, but of characters
        sizes = None if isinstance(pos_embed_sizes, (str, bytes)) else tuple(pos_embed_sizes)
    except TypeError:
        sizes = None
    if sizes is None:
        raise ValueError(f"pos_embed_sizes must be a sequence of {stages} positive integers, "
                         f"one side per stage; got {pos_embed_sizes!r}.")
    if len(sizes) != stages:
        raise ValueError(
            f"pos_embed_sizes needs one size per stage ({stages}); got {pos_embed_sizes}.")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"pos_embed_sizes must hold positive integers (the embedding's "
                             f"side per stage); got {pos_embed_sizes!r}.")
    return tuple(int(size) for size in sizes)


def _validate_input_shape(input_shape: Any, input_tensor: Any) -> tuple[int, int, int, int]:
    # Errors name the argument the shape came from.
    source = "input_shape"
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                f"input_tensor must be a KerasTensor (from keras.Input or a layer's output); "
                f"got {type(input_tensor).__module__}.{type(input_tensor).__name__}. Pass "
                f"data to the built model instead, or its shape as input_shape.")
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(f"input_tensor has shape {tensor_shape} (without the batch axis) "
                             f"but input_shape is {tuple(input_shape)}; give one of them.")
        input_shape = tensor_shape
        source = "input_tensor's shape (without the batch axis)"
    if input_shape is None:
        input_shape = (DEFAULT_FRAMES, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"{source} must be (frames, height, width, 3), channels last, without the batch "
            f"axis; got {input_shape} (rank {len(input_shape)})."
        )
    for size in input_shape:
        if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)):
            raise ValueError(f"{source} must hold integers (frames, height, width, 3); got "
                             f"{input_shape}.")
    frames, height, width, channels = input_shape
    if channels != 3:
        raise ValueError(f"SqueezeTime takes RGB input: expected 3 channels, got {channels} "
                         f"in {source} {input_shape}.")
    if None in (frames, height, width):
        raise ValueError(
            f"{source} must be static (frames, height and width fix the squeezed channels "
            f"and the positional-embedding resize); got {input_shape}."
        )
    if min(height, width) < arch.MIN_INPUT_SIZE:
        raise ValueError(
            f"Height and width must be at least {arch.MIN_INPUT_SIZE} px (smaller inputs leave "
            f"no pixel after the last stage, in the official model too); got {height}x{width} "
            f"in {source} {input_shape}."
        )
    if frames < 1:
        raise ValueError(f"frames must be at least 1; got {frames} in {source} {input_shape}.")
    return tuple(int(size) for size in input_shape)
