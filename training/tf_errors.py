"""TensorFlow's error messages as one readable line, for the training tools' errors.

tf.errors messages carry graph-function and op decorations (`{{function_node ...}}`,
`[Op:IteratorGetNext]`) and a second line of context; a user needs the first sentence.
An error raised inside a traced function (`model.fit`'s step) opens with "Graph
execution error:" and the Python frames where the op was defined: its sentence follows.
"""

from __future__ import annotations

import re

# Lines of a graph-execution error that are not the op's own message.
_FRAMING = re.compile(r'^(Graph execution error:|Detected at node |File "|\[\[|'
                      r'\d+ root error\(s\) found)')


def tf_error_text(error: BaseException) -> str:
    """The first line of `error`'s own message without TensorFlow's decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first == "Graph execution error:":
        own = [line for line in lines if not _FRAMING.match(line)]
        first = re.sub(r"^\(\d+\) ", "", own[0]) if own else first
    first = re.sub(r"\s*\[Op:[^\]]*\].*$", "", first)
    return first.strip() or type(error).__name__
