"""Maps official (PyTorch) SqueezeTime state-dict entries onto a Keras model's variables.

(Named for what it does; the checkpoint-to-file conversion of `squeezetime-convert` is
`keras_squeezetime.checkpoint_conversion`, LiteRT conversion is `keras_squeezetime.tflite`.)

State-dict keys here are normalised (see `weights.checkpoint.load_state_dict`):
backbone keys as the official `ResNet` names them (`conv1.weight`,
`layer2.0.conv2.spatial_conv.pos_embed`, ...) and the head as `fc.weight` /
`fc.bias`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Mapping

import keras
import numpy as np

from keras_squeezetime.architecture import (
    HEAD,
    STAGE_BLOCKS,
    STEM_BN,
    STEM_CONV,
    stage_block_names,
)
from keras_squeezetime.weights.stem_mismatch import stem_mismatch

HEAD_KEYS = ("fc.weight", "fc.bias")


def _conv(weight: np.ndarray) -> np.ndarray:
    return np.transpose(weight, (2, 3, 1, 0))  # (O, I, kh, kw) -> (kh, kw, I, O)


def _depthwise(weight: np.ndarray) -> np.ndarray:
    return np.transpose(weight, (2, 3, 0, 1))  # (C, 1, kh, kw) -> (kh, kw, C, 1)


def _pointwise_dense(weight: np.ndarray) -> np.ndarray:
    return weight.reshape(weight.shape[0], weight.shape[1]).T  # (O, I, 1, 1) -> (I, O)


def _linear(weight: np.ndarray) -> np.ndarray:
    return weight.T


def _pos_embed(weight: np.ndarray) -> np.ndarray:
    return np.transpose(weight[0], (1, 2, 0))  # (1, C, P, P) -> (P, P, C)


def _identity(weight: np.ndarray) -> np.ndarray:
    return weight


@dataclasses.dataclass(frozen=True)
class Target:
    """Where one official tensor goes and how it is laid out there."""

    variable: keras.Variable
    transform: Callable[[np.ndarray], np.ndarray]


def _bn(targets: dict, key: str, layer: keras.layers.BatchNormalization) -> None:
    for suffix, variable in (
        ("weight", layer.gamma),
        ("bias", layer.beta),
        ("running_mean", layer.moving_mean),
        ("running_var", layer.moving_variance),
    ):
        targets[f"{key}.{suffix}"] = Target(variable, _identity)


def _conv_layer(targets: dict, key: str, layer, transform=_conv) -> None:
    targets[f"{key}.weight"] = Target(layer.kernel, transform)
    if getattr(layer, "use_bias", False):
        targets[f"{key}.bias"] = Target(layer.bias, _identity)


def official_targets(model: keras.Model) -> dict[str, Target]:
    """Every official state-dict key the model holds, with its Keras variable."""
    targets: dict[str, Target] = {}
    _conv_layer(targets, "conv1", model.get_layer(STEM_CONV))
    _bn(targets, "bn1", model.get_layer(STEM_BN))
    for stage, blocks in enumerate(STAGE_BLOCKS, start=1):
        for index, name in enumerate(stage_block_names(stage, blocks)):
            block = model.get_layer(name)
            key = f"layer{stage}.{index}"
            if block.strides == 2:
                targets[f"{key}.downsample.0.weight"] = Target(block.downsample.kernel, _depthwise)
                targets[f"{key}.downsample.0.bias"] = Target(block.downsample.bias, _identity)
                _bn(targets, f"{key}.downsample.1", block.downsample_bn)
            if block.shortcut is not None:
                _conv_layer(targets, f"{key}.shortcut_conv.0", block.shortcut)
                _bn(targets, f"{key}.shortcut_conv.1", block.shortcut_bn)
            _conv_layer(targets, f"{key}.conv1", block.conv1)
            _bn(targets, f"{key}.bn1", block.bn1)
            _bn(targets, f"{key}.bn2", block.bn2)
            _conv_layer(targets, f"{key}.conv3", block.conv3)
            _bn(targets, f"{key}.bn3", block.bn3)

            ctl, ctl_key = block.ctl, f"{key}.conv2"
            focus = ctl.temporal_focus
            _conv_layer(targets, f"{ctl_key}.param_conv.1", focus.fc1, _pointwise_dense)
            _bn(targets, f"{ctl_key}.param_conv.2", focus.bn)
            _conv_layer(targets, f"{ctl_key}.param_conv.4", focus.fc2, _pointwise_dense)
            _conv_layer(targets, f"{ctl_key}.temporal_conv", ctl.tfc)

            ioi, ioi_key = ctl.ioi, f"{ctl_key}.spatial_conv"
            targets[f"{ioi_key}.pos_embed"] = Target(ioi.pos_embed.embedding, _pos_embed)
            _conv_layer(targets, f"{ioi_key}.short_conv", ioi.short_conv)
            _conv_layer(targets, f"{ioi_key}.glo_conv.0", ioi.gate_conv1)
            _bn(targets, f"{ioi_key}.glo_conv.1", ioi.gate_bn1)
            _conv_layer(targets, f"{ioi_key}.glo_conv.3", ioi.gate_conv2)
            _bn(targets, f"{ioi_key}.glo_conv.4", ioi.gate_bn2)
            _conv_layer(targets, f"{ioi_key}.glo_conv.6", ioi.gate_conv3)
    if _has_head(model):
        _conv_layer(targets, "fc", model.get_layer(HEAD).fc, _linear)
    return targets


def _has_head(model: keras.Model) -> bool:
    return any(layer.name == HEAD for layer in model.layers)


def _torch_shape(target: Target) -> tuple[int, ...]:
    """The official layout of a target's shape, for error messages."""
    probe = np.zeros(target.variable.shape, dtype=np.float32)
    inverse = {
        _conv: lambda a: np.transpose(a, (3, 2, 0, 1)),
        _depthwise: lambda a: np.transpose(a, (2, 3, 0, 1)),
        _pointwise_dense: lambda a: a.T[:, :, None, None],
        _linear: lambda a: a.T,
        _pos_embed: lambda a: np.transpose(a, (2, 0, 1))[None],
        _identity: lambda a: a,
    }[target.transform]
    return tuple(inverse(probe).shape)


def apply_official_state_dict(
    model: keras.Model,
    state_dict: Mapping[str, np.ndarray],
    source: str = "checkpoint",
    strict_backbone: bool = True,
) -> dict[str, list[str]]:
    """Loads a normalised official state dict into `model`.

    The head is loaded when the model has one of the checkpoint's size. When the
    checkpoint has no head (the ImageNet backbone) or another number of classes,
    the backbone is loaded and the head keeps its fresh initialisation, with a
    warning: that is fine-tuning.

    Args:
      model: a model built by `SqueezeTime`.
      state_dict: normalised official keys to arrays.
      source: the checkpoint's name for error messages (usually its path).
      strict_backbone: raise on missing, unexpected or mis-shaped backbone keys.
        With `False` (used for the ImageNet checkpoint, whose stem may differ, as
        the official `load_ckpts` does) such keys are skipped with a warning.

    Returns:
      `{"loaded": [...], "skipped": [...]}` official keys.

    Raises:
      ValueError: naming the missing, unexpected or mis-shaped keys and, for the
        stem, the frame count or width the checkpoint was trained with.
    """
    targets = official_targets(model)
    state = {k: np.asarray(v) for k, v in state_dict.items()
             if not k.endswith("num_batches_tracked")}
    skipped: list[str] = []

    ckpt_head = all(k in state for k in HEAD_KEYS)
    if _has_head(model):
        head = model.get_layer(HEAD)
        if not ckpt_head:
            warnings.warn(
                f"{source} has no classification head (a backbone checkpoint): the backbone is "
                f"loaded and the {head.num_classes}-class head keeps its fresh initialisation.",
                stacklevel=3,
            )
            for key in HEAD_KEYS:
                targets.pop(key)
        elif state["fc.weight"].shape[0] != head.num_classes:
            warnings.warn(
                f"{source} has a {state['fc.weight'].shape[0]}-class head but the model has "
                f"{head.num_classes} classes: the backbone is loaded and the head is left fresh "
                f"for fine-tuning (pass num_classes={state['fc.weight'].shape[0]} to keep it).",
                stacklevel=3,
            )
            for key in HEAD_KEYS:
                targets.pop(key)
                skipped.append(key)
                state.pop(key)
    for key in HEAD_KEYS:
        if key not in targets and key in state:
            state.pop(key)
            if key not in skipped:
                skipped.append(key)

    if strict_backbone:
        _check_stem(model, state, source)
    missing = sorted(k for k in targets if k not in state)
    unexpected = sorted(k for k in state if k not in targets)
    misshaped = []
    for key in sorted(set(targets) & set(state)):
        if state[key].shape != _torch_shape(targets[key]):
            misshaped.append(
                f"{key}: checkpoint {tuple(state[key].shape)}, model expects "
                f"{_torch_shape(targets[key])}"
            )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_shorten(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_shorten(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}): {_shorten(misshaped)}")
    if problems and strict_backbone:
        raise ValueError(f"Cannot load {source} into {model.name}: " + "; ".join(problems))
    if problems:
        warnings.warn(f"Partially loading {source}: " + "; ".join(problems), stacklevel=3)
        bad = {entry.split(":")[0] for entry in misshaped}
        skipped += missing + unexpected + sorted(bad)

    loaded = []
    for key, target in targets.items():
        if key in state and key not in skipped:
            value = target.transform(state[key]).astype(target.variable.dtype)
            if tuple(value.shape) == tuple(target.variable.shape):
                target.variable.assign(value)
                loaded.append(key)
    return {"loaded": loaded, "skipped": skipped}


def _check_stem(model: keras.Model, state: Mapping[str, np.ndarray], source: str) -> None:
    """Names frame-count and width mismatches, the common mistakes, plainly."""
    weight = state.get("conv1.weight")
    if weight is None or weight.ndim != 4:
        return
    message = stem_mismatch(source, f"conv1.weight {tuple(weight.shape)}", weight.shape[1] // 3,
                            weight.shape[0], model)
    if message:
        raise ValueError(message)


def _shorten(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
