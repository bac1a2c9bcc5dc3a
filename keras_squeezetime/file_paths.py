"""Existence checks and joins that work for local paths and remote ones (`gs://...`).

Remote paths go through `tf.io.gfile`, imported only for them, so that the core does not
import TensorFlow for local files (and works under the JAX and PyTorch backends).
"""

from __future__ import annotations

import os


def is_remote(path: str) -> bool:
    """True for a URL-like path (`gs://bucket/...`), which `tf.io.gfile` reads."""
    return "://" in path


def exists(path: str) -> bool:
    """Whether `path` (a file or folder, local or remote) exists."""
    if is_remote(path):
        import tensorflow as tf  # remote paths only

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def isdir(path: str) -> bool:
    """Whether `path` (local or remote) is a folder."""
    if is_remote(path):
        import tensorflow as tf  # remote paths only

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def join(folder: str, name: str) -> str:
    """`folder/name`, with `/` for remote folders."""
    return f"{folder.rstrip('/')}/{name}" if is_remote(folder) else os.path.join(folder, name)
