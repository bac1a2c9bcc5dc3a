"""The `SqueezeTime` model builder, in the style of `keras.applications`."""

from __future__ import annotations

import numbers

from typing import Sequence

import keras

from keras_squeezetime import architecture as arch
from keras_squeezetime.layers import (
    ClassificationHead,
    CTLBottleneck,
    TimeToChannel,
    VideoNormalization,
)
from keras_squeezetime.layers.batch_norm import kaiming_fan_out, official_batch_norm
from keras_squeezetime.model_config import DEFAULT_FRAMES, DEFAULT_IMAGE_SIZE
from keras_squeezetime.weights.initialise import initialise_weights


def SqueezeTime(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int] | None = None,
    pooling: str | None = None,
    num_classes: int = 400,
    classifier_activation: str | None = "softmax",
    dropout_rate: float = 0.5,
    width_multiplier: float = 1.0,
    pos_embed_sizes: Sequence[int] = arch.DEFAULT_POS_EMBED_SIZES,
    include_preprocessing: bool = True,
    name: str = "squeezetime",
) -> keras.Model:
    """Builds SqueezeTime (Zhai et al., 2024), depth 50, numerically the official model.

    The clip's time axis is squeezed into channels (`c * T + t`), a 5x5 stride-2
    stem and max pool follow, then four stages of CTL bottleneck blocks
    (`[3, 4, 6, 3]` blocks, strides `[1, 2, 2, 2]`) and, with `include_top`, the
    mmaction `I2DHead` (GAP, dropout, linear).

    Args:
      include_top: add the classification head.
      weights: `None` (random initialisation), a preset name (`"kinetics400"`,
        `"kinetics600"`, `"hmdb51"`, `"imagenet"` for the ImageNet-1K backbone), or a
        path to an official `.pth` checkpoint, a `.weights.h5` or a `.keras` file.
      input_tensor: optional Keras tensor to use as the model input.
      input_shape: `(frames, height, width, 3)`, default `(16, 224, 224, 3)`.
        Any static size the official model accepts: height and width of at least
        29 px. The stem and pool round up and the stages' 2x2 downsampling rounds down,
        as the official model does: multiples of 32 give exact `h/32` feature maps,
        112 gives 3x3, 286 (HMDB51's test size) gives 9x9.
      pooling: with `include_top=False`, `None` returns the feature map
        `(batch, h', w', 2048 * width_multiplier)` (`h' = h/32` for multiples of 32),
        `"avg"` or `"max"` a vector.
      num_classes: classes of the head (an integer). When it differs from the loaded
        checkpoint's head, the backbone is loaded and the head is left fresh; a
        `.weights.h5` needs its run's `config.json` beside it for that (the file alone
        does not say which model it was saved from).
      classifier_activation: activation of the head (`None` gives logits).
      dropout_rate: dropout before the head's linear layer.
      width_multiplier: channel width factor (paper Table 5: 0.5 to 1.25).
      pos_embed_sizes: side of the learned positional embedding of each stage;
        the official checkpoints use `(56, 28, 14, 7)`.
      include_preprocessing: take RGB pixels in [0, 255] and normalise inside the
        model; `False` takes input already normalised as `preprocess_input` does.
      name: model name.

    Returns:
      A functional `keras.Model`.
    """
    input_shape = _validate_input_shape(input_shape, input_tensor)
    if len(pos_embed_sizes) != len(arch.STAGE_BLOCKS):
        raise ValueError(
            f"pos_embed_sizes needs one size per stage ({len(arch.STAGE_BLOCKS)}); got "
            f"{pos_embed_sizes}."
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}.")
    narrowest = min(arch.STEM_CHANNELS, *arch.STAGE_PLANES)
    if not width_multiplier * narrowest >= 1:
        raise ValueError(
            f"width_multiplier must be at least 1/{narrowest} = {1 / narrowest} (narrower "
            f"leaves the stem and stage 1 without channels); got {width_multiplier}.")
    if include_top:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise ValueError(f"num_classes must be an integer; got {num_classes!r} "
                             f"({type(num_classes).__name__}).")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1; got {num_classes}.")
        num_classes = int(num_classes)

    if input_tensor is None:
        inputs = keras.Input(shape=input_shape, name=arch.INPUT_NAME)
    elif not keras.backend.is_keras_tensor(input_tensor):
        inputs = keras.Input(tensor=input_tensor, shape=input_shape, name=arch.INPUT_NAME)
    else:
        inputs = input_tensor

    x = inputs
    if include_preprocessing:
        x = VideoNormalization(name=arch.NORMALIZATION)(x)
    x = TimeToChannel(name=arch.SQUEEZE)(x)

    # Explicit symmetric padding: Keras "same" pads stride-2 layers asymmetrically.
    stem_channels = int(arch.STEM_CHANNELS * width_multiplier)
    x = keras.layers.ZeroPadding2D(2, name=arch.STEM_PAD)(x)
    x = keras.layers.Conv2D(
        stem_channels, 5, strides=2, use_bias=False, kernel_initializer=kaiming_fan_out(),
        name=arch.STEM_CONV,
    )(x)
    x = official_batch_norm(arch.STEM_BN)(x)
    x = keras.layers.ReLU(name=arch.STEM_RELU)(x)
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, >= 0.
    x = keras.layers.ZeroPadding2D(1, name=arch.POOL_PAD)(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name=arch.POOL)(x)

    for stage, (planes, stride, pos) in enumerate(
        zip(arch.STAGE_PLANES, arch.STAGE_STRIDES, pos_embed_sizes), start=1
    ):
        for block, block_name in enumerate(arch.stage_block_names(stage)):
            x = CTLBottleneck(
                int(planes * width_multiplier),
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
        x = keras.layers.GlobalAveragePooling2D(name=arch.AVG_POOL)(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name=arch.MAX_POOL)(x)

    model_inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else inputs
    model = keras.Model(model_inputs, x, name=name)

    if weights is not None:
        # The builder passes itself: a .weights.h5 may need its own model built first.
        initialise_weights(model, weights, build_model=SqueezeTime)
    return model


def _validate_input_shape(input_shape, input_tensor) -> tuple[int, int, int, int]:
    if input_tensor is not None:
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(f"input_tensor has shape {tensor_shape} (without the batch axis) "
                             f"but input_shape is {tuple(input_shape)}; give one of them.")
        input_shape = tensor_shape
    if input_shape is None:
        input_shape = (DEFAULT_FRAMES, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            "input_shape must be (frames, height, width, 3), channels last, without the batch "
            f"axis; got {input_shape} (rank {len(input_shape)})."
        )
    frames, height, width, channels = input_shape
    if channels != 3:
        raise ValueError(f"SqueezeTime takes RGB input: expected 3 channels, got {channels} "
                         f"in input_shape {input_shape}.")
    if None in (frames, height, width):
        raise ValueError(
            f"input_shape must be static (frames, height and width fix the squeezed channels "
            f"and the positional-embedding resize); got {input_shape}."
        )
    if min(height, width) < arch.MIN_INPUT_SIZE:
        raise ValueError(
            f"Height and width must be at least {arch.MIN_INPUT_SIZE} px (smaller inputs leave "
            f"no pixel after the last stage, in the official model too); got {height}x{width} "
            f"in input_shape {input_shape}."
        )
    if frames < 1:
        raise ValueError(f"frames must be at least 1; got {frames}.")
    return input_shape
