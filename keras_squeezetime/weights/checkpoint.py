"""Official SqueezeTime checkpoints as plain state dicts, and what model they describe.

Normalised keys are the official backbone's own names (the `ResNet` inside the
official `SqueezeTime` wrapper, e.g. `conv1.weight`,
`layer2.0.conv2.spatial_conv.pos_embed`) plus `fc.weight` / `fc.bias` for the
classification head, whatever wrapper saved them (mmaction `backbone.net.` and
`cls_head.fc_cls.`, the bare wrapper's `net.`, `DataParallel`'s `module.`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping

import numpy as np

from keras_squeezetime.architecture import STAGE_BLOCKS, frames_of_stem, width_multiplier_of
from keras_squeezetime.weights.pth import load_pth

# Checked in order; the first matching prefix is rewritten.
_PREFIXES = (
    ("backbone.net.", ""),
    ("net.", ""),
    ("cls_head.fc_cls.", "fc."),
)
_CONTAINER_KEYS = ("state_dict", "model")
NUM_STAGES = len(STAGE_BLOCKS)
_BLOCK_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")
# The last stage's first 1x1 convolution: its output rows are the stage's planes, which
# give the width multiplier back (`architecture.width_multiplier_of`).
LAST_STAGE_CONV1 = f"layer{NUM_STAGES}.0.conv1.weight"


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """The model configuration an official checkpoint was trained with.

    Attributes:
      width_multiplier: from the last stage's planes (`layer4.0.conv1.weight` rows / 512,
        see `architecture.width_multiplier_of`); the stem's 64 x width rows round too
        coarsely to rebuild stage 4.
      frames: clip length, `conv1.weight` input channels / 3.
      num_classes: head rows, or `None` for a backbone-only checkpoint.
      pos_embed_sizes: side of each stage's learned positional embedding.
      stage_blocks: blocks per stage, `(3, 4, 6, 3)` for depth 50.
      depth: ResNet depth implied by `stage_blocks` and the block type.
      has_head: the checkpoint holds `fc.weight` and `fc.bias`.
    """

    width_multiplier: float
    frames: int
    num_classes: int | None
    pos_embed_sizes: tuple[int, ...]
    stage_blocks: tuple[int, ...]
    depth: int
    has_head: bool

    def builder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `SqueezeTime` that match this checkpoint (minus input size)."""
        kwargs: dict[str, Any] = {
            "width_multiplier": self.width_multiplier,
            "pos_embed_sizes": self.pos_embed_sizes,
            "include_top": self.has_head,
        }
        if self.has_head:
            kwargs["num_classes"] = self.num_classes
        return kwargs


def normalize_state_dict(
    checkpoint: Mapping[str, Any], source: str = "checkpoint"
) -> dict[str, np.ndarray]:
    """Extracts and renames the state dict of a loaded checkpoint (see module docstring).

    Takes `checkpoint["state_dict"]` or `checkpoint["model"]` when present, else
    the mapping itself; strips `module.` prefixes, maps mmaction prefixes to the
    official backbone's names and drops the `num_batches_tracked` BN counters.
    Keys of other prefixes are kept as they are, so that a loader can name them.

    Args:
      checkpoint: what `load_pth` returned.
      source: the checkpoint's name for error messages.

    Raises:
      ValueError: no state dict is found, an entry is not an array, or two keys
        collide after renaming.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"{source} holds a {type(checkpoint).__name__}, not a state dict or a checkpoint dict."
        )
    state = checkpoint
    for container in _CONTAINER_KEYS:
        if isinstance(checkpoint.get(container), Mapping):
            state = checkpoint[container]
            break
    not_arrays = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        raise ValueError(
            f"{source} holds no state dict: expected a 'state_dict' or 'model' entry or a "
            f"dict of tensors, but {sorted(map(str, not_arrays))[:5]} are not tensors "
            f"(top-level keys: {sorted(map(str, checkpoint))[:8]})."
        )
    normalized: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        name = str(key)
        while name.startswith("module."):
            name = name[len("module."):]
        for old, new in _PREFIXES:
            if name.startswith(old):
                name = new + name[len(old):]
                break
        if name.endswith("num_batches_tracked"):
            continue
        if name in normalized:
            raise ValueError(f"{source}: keys {origin[name]!r} and {key!r} both map to {name!r}.")
        normalized[name] = value
        origin[name] = str(key)
    return normalized


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads an official `.pth` checkpoint into a normalised `{key: np.ndarray}` dict.

    No PyTorch is needed (see `weights.pth.load_pth`); optimizer state and
    metadata in the file are ignored.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a safe, readable checkpoint or holds no state dict.
    """
    path = os.fspath(path)
    return normalize_state_dict(load_pth(path), source=path)


def inspect_checkpoint(
    state_dict_or_path: Mapping[str, Any] | str | os.PathLike,
) -> CheckpointConfig:
    """Infers width, frames, classes, positional sizes and depth from a checkpoint.

    Args:
      state_dict_or_path: a `.pth` path, a loaded checkpoint or a (normalised or
        raw) state dict.

    Raises:
      ValueError: the keys or shapes do not look like a SqueezeTime checkpoint.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        source = os.fspath(state_dict_or_path)
        state = load_state_dict(source)
    else:
        source = "state dict"
        state = normalize_state_dict(state_dict_or_path, source=source)

    expected = ["conv1.weight", "bn1.weight"] + [
        f"layer{k}.0.conv2.{part}"
        for k in range(1, NUM_STAGES + 1)
        for part in ("temporal_conv.weight", "spatial_conv.pos_embed")
    ] + [LAST_STAGE_CONV1]
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(
            f"{source} does not look like a SqueezeTime checkpoint: missing {missing[:4]}"
            f"{' ...' if len(missing) > 4 else ''} (expected keys such as conv1.weight, "
            f"layer1.0.conv2.temporal_conv.weight, layer1.0.conv2.spatial_conv.pos_embed; "
            f"found e.g. {sorted(state)[:4]})."
        )

    stem = state["conv1.weight"]
    try:
        frames = frames_of_stem(int(stem.shape[1])) if stem.ndim == 4 else None
    except ValueError:
        frames = None
    if frames is None:
        raise ValueError(
            f"{source}: conv1.weight has shape {stem.shape}; "
            "expected (64 * width, 3 * frames, 5, 5)."
        )
    planes = state[LAST_STAGE_CONV1]
    if planes.ndim != 4 or planes.shape[0] < 1:
        raise ValueError(f"{source}: {LAST_STAGE_CONV1} has shape {planes.shape}; expected "
                         "(512 * width, 1024 * width, 1, 1).")
    pos_sizes = []
    for k in range(1, NUM_STAGES + 1):
        shape = state[f"layer{k}.0.conv2.spatial_conv.pos_embed"].shape
        if len(shape) != 4 or shape[0] != 1 or shape[2] != shape[3]:
            raise ValueError(
                f"{source}: layer{k}.0.conv2.spatial_conv.pos_embed has shape {shape}; "
                "expected (1, 16, P, P)."
            )
        pos_sizes.append(int(shape[2]))

    blocks: dict[int, set[int]] = {}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if sorted(blocks) != list(range(1, NUM_STAGES + 1)):
        raise ValueError(f"{source}: expected stages layer1..layer4, found {sorted(blocks)}.")
    stage_blocks = []
    for stage in sorted(blocks):
        indices = blocks[stage]
        if indices != set(range(len(indices))):
            raise ValueError(f"{source}: layer{stage} has non-contiguous blocks {sorted(indices)}.")
        stage_blocks.append(len(indices))
    # Bottleneck blocks have conv3 (3 convs per block), basic blocks two; +2 for stem and head.
    per_block = 3 if "layer1.0.conv3.weight" in state else 2
    depth = per_block * sum(stage_blocks) + 2

    has_head = "fc.weight" in state and "fc.bias" in state
    return CheckpointConfig(
        width_multiplier=width_multiplier_of(int(planes.shape[0])),
        frames=frames,
        num_classes=int(state["fc.weight"].shape[0]) if has_head else None,
        pos_embed_sizes=tuple(pos_sizes),
        stage_blocks=tuple(stage_blocks),
        depth=depth,
        has_head=has_head,
    )
