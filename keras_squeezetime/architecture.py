"""SqueezeTime's stage layout and the names of its layers: the contract other modules rely on.

The builder creates layers with these names; the official weight mapping, batch-norm
folding, the optimiser's head learning rate (`HEAD_PREFIX`), explanations
(`LAST_BLOCK`) and the LiteRT float-layer groups (`layer_group`) find them by these
names. This module imports nothing from the package, so every other module may use it.
"""

from __future__ import annotations

import math

# Depth 50, the only depth the paper reports: Bottleneck blocks per stage.
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
STEM_CHANNELS = 64
# The official checkpoints' (and the builder's default) channel width factor.
DEFAULT_WIDTH_MULTIPLIER = 1.0
# The stem takes the clip's frames squeezed into channels: 3 (RGB) per frame.
CHANNELS_PER_FRAME = 3
# Output channels of a block are `planes * EXPANSION`.
EXPANSION = 4
# Side of each stage's learned positional embedding in the official checkpoints.
DEFAULT_POS_EMBED_SIZES = (56, 28, 14, 7)
# A stage-1 embedding of side P was made for P * 4 px input (stem conv and pool halve it).
POS_EMBED_STRIDE = 4

# Layer names.
INPUT_NAME = "video"
NORMALIZATION = "normalization"
SQUEEZE = "squeeze"
STEM_PAD = "stem_pad"
STEM_CONV = "stem_conv"
STEM_BN = "stem_bn"
STEM_BIAS = "stem_bias"  # replaces STEM_BN in a folded model with folded preprocessing
STEM_RELU = "stem_relu"
POOL_PAD = "pool_pad"
POOL = "pool"
HEAD = "head"
AVG_POOL = "avg_pool"
MAX_POOL = "max_pool"
# Variable paths under the classification head start with this (e.g. "head/fc/kernel").
HEAD_PREFIX = f"{HEAD}/"

STEM_LAYERS = (NORMALIZATION, SQUEEZE, STEM_PAD, STEM_CONV, STEM_BN, STEM_BIAS, STEM_RELU,
               POOL_PAD, POOL)
# Groups of layers, in model order, for per-group settings (e.g. LiteRT layers kept float).
LAYER_GROUPS = ("stem", *(f"stage{i}" for i in range(1, len(STAGE_BLOCKS) + 1)), HEAD)


def block_name(stage: int, block: int) -> str:
    """The layer name of block `block` (1-based) of stage `stage` (1-based): `stage2_block1`."""
    return f"stage{stage}_block{block}"


def stage_block_names(stage: int, num_blocks: int | None = None) -> list[str]:
    """Layer names of one stage's blocks (1-based), e.g. `["stage2_block1", ...]`.

    `num_blocks` defaults to the stage's count in `STAGE_BLOCKS`.
    """
    if num_blocks is None:
        if not 1 <= stage <= len(STAGE_BLOCKS):
            raise ValueError(f"stage must be in 1..{len(STAGE_BLOCKS)}; got {stage}.")
        num_blocks = STAGE_BLOCKS[stage - 1]
    return [block_name(stage, block) for block in range(1, num_blocks + 1)]


def block_names() -> list[str]:
    """Every block's layer name, in model order."""
    return [name for stage in range(1, len(STAGE_BLOCKS) + 1) for name in stage_block_names(stage)]


# The last block: its output is the backbone's feature map (explanations use it).
LAST_BLOCK = block_name(len(STAGE_BLOCKS), STAGE_BLOCKS[-1])
# The last stage's first block: its `planes` (its conv1's outputs) give the width
# multiplier back (`width_multiplier_of`).
LAST_STAGE_FIRST_BLOCK = block_name(len(STAGE_BLOCKS), 1)


def layer_group(path: str) -> str:
    """The group (`LAYER_GROUPS`) of a layer or variable path such as `stage1_block2/ctl/tfc`.

    Raises:
      ValueError: the path's first component is no SqueezeTime layer.
    """
    first = path.strip("/").split("/")[0]
    if first in STEM_LAYERS:
        return "stem"
    if first == HEAD:
        return HEAD
    stage = first.split("_")[0]
    if stage in LAYER_GROUPS and first in block_names():
        return stage
    raise ValueError(f"{path!r} is not a SqueezeTime layer path; groups are {LAYER_GROUPS}.")


def feature_map_sizes(size: int) -> tuple[int, ...]:
    """Spatial side after the stem conv, the pool and each stage, for an input side `size`.

    As the official model computes them: the 5x5 stride-2 conv (padding 2) and the 3x3
    stride-2 pool (padding 1) round up, the 2x2 stride-2 downsampling of stages 2-4 rounds
    down (an odd map loses its last row or column).
    """
    stem = math.ceil(size / 2)
    pool = math.ceil(stem / 2)
    sizes = [stem, pool]
    current = pool
    for stride in STAGE_STRIDES:
        current = current // stride
        sizes.append(current)
    # sizes: stem, pool, stage1..stage4 (stage1 keeps the pool's size)
    return tuple(sizes)


def scaled_channels(channels: int, width_multiplier: float) -> int:
    """Channels of a layer with `channels` at width 1 in a model of `width_multiplier`.

    `int(channels * width_multiplier)`, rounding down as the official code does
    (`int(64 * widen_factor)`): the stem has `scaled_channels(STEM_CHANNELS, w)` output
    channels and stage k `scaled_channels(STAGE_PLANES[k - 1], w)` planes.
    """
    return int(channels * width_multiplier)


def width_multiplier_of(channels: int, channels_at_width_1: int = STAGE_PLANES[-1]) -> float:
    """The width multiplier of a model whose layer of `channels_at_width_1` (at width 1) has
    `channels`: by default the last stage's planes (its first block's `conv1` outputs).

    Rounding down makes the multiplier a range, not a number: every `w` with
    `scaled_channels(channels_at_width_1, w) == channels` builds that layer alike. The
    last stage's planes (512 at width 1) pin it closest, and closely enough to rebuild
    every layer: each narrower layer's width (64, 128, 256 divide 512) is fixed by the
    last stage's. A narrower layer is not enough (19 stem channels come from any width in
    [0.297, 0.3125), whose models have 152 to 159 stage-4 planes). Of the range this
    returns the number with the fewest decimals, so the multipliers people use come back
    as they were given (0.3 -> 153 planes -> 0.3, 1.1 -> 563 -> 1.1).

    Raises:
      ValueError: `channels` or `channels_at_width_1` is not a positive integer.
    """
    for name, value in (("channels", channels), ("channels_at_width_1", channels_at_width_1)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    channels, base = int(channels), int(channels_at_width_1)
    # Smallest d-decimal number >= channels / base, for d = 0, 1, ...: the first one
    # still in the range (checked with the builder's own rounding) has the fewest decimals.
    for decimals in range(10):
        scale = 10 ** decimals
        candidate = math.ceil(channels * scale / base) / scale
        if scaled_channels(base, candidate) == channels:
            return candidate
    return channels / base  # exact (base is a power of two): the range's lower end


def frames_of_stem(input_channels: int) -> int:
    """Frames of the clips a stem with `input_channels` input channels takes (3 per frame,
    time squeezed into channels).

    Raises:
      ValueError: `input_channels` is not a positive multiple of 3.
    """
    if isinstance(input_channels, bool) or int(input_channels) != input_channels or (
            input_channels < CHANNELS_PER_FRAME or input_channels % CHANNELS_PER_FRAME):
        raise ValueError(f"A stem takes {CHANNELS_PER_FRAME} x frames input channels; got "
                         f"{input_channels!r}.")
    return int(input_channels) // CHANNELS_PER_FRAME


def _smallest_input_size() -> int:
    size = 1
    while feature_map_sizes(size)[-1] < 1:
        size += 1
    return size


# The smallest height or width whose last feature map is at least 1x1 (the official model
# fails below it too: a 2x2 downsampling kernel cannot slide over a 1x1 map).
MIN_INPUT_SIZE = _smallest_input_size()
