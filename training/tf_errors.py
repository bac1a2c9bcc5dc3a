"""TensorFlow's error messages as one readable line, for the training tools' errors.

tf.errors messages carry graph-function and op decorations (`{{function_node ...}}`,
`[Op:IteratorGetNext]`) and a second line of context; a user needs the first sentence.
"""

from __future__ import annotations

import re


def tf_error_text(error: BaseException) -> str:
    """The first line of `error`'s message without TensorFlow's decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    first = message.strip().splitlines()[0] if message.strip() else ""
    first = re.sub(r"\s*\[Op:[^\]]*\].*$", "", first)
    return first.strip() or type(error).__name__
