"""Which Keras call paths a converted tensor's name stands for.

The converter names an op's output after every TensorFlow op fused into it, `;`-separated,
the op that produces the value first: `squeezetime_1/stage2_block1_1/ctl_1/ioi_1/Relu;
squeezetime_1/stage2_block1_1/ctl_1/ioi_1/gate_conv1_1/BiasAdd;...`. Constants with equal
values are merged into one and keep one of their names, so a fused name can also carry the
name of a constant folded from another block (the batch-norm scale of a stage-1 block inside
a stage-4 convolution, say). Such a name says nothing about where the op is: `op_paths`
keeps only the paths in the same block as the first one. The int8 fallback
(`int8_quantization`), the agreement search's units (`int8_agreement`) and the op profile's
groups (`op_profile`) all read names through it.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"(?:^|/)(stage\d+_block\d+)(?:_\d+)?/")


def block_of(path: str) -> str | None:
    """The `stageN_blockM` block a call path lies in, or None (stem, head, a bare constant)."""
    found = _BLOCK.search(path)
    return found.group(1) if found else None


def op_paths(name: str) -> list[str]:
    """The call paths of tensor `name` that locate its op: the first one and the others
    in the same block (or, for an op outside the blocks, the others outside them too)."""
    paths = [path for path in name.split(";") if path]
    if not paths:
        return []
    home = block_of(paths[0])
    return [path for path in paths if block_of(path) == home]
