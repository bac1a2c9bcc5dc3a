"""Existence checks, joins, reads and atomic writes for local paths and remote ones (`gs://...`).

Remote paths go through `tf.io.gfile`, imported only for them, so that the core does not
import TensorFlow for local files (and works under the JAX and PyTorch backends).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


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


def parent(path: str) -> str:
    """The folder holding `path` (absolute for a local path)."""
    return path.rsplit("/", 1)[0] if is_remote(path) else os.path.dirname(os.path.abspath(path))


def read_text(path: str) -> str:
    """The UTF-8 text of a local or remote file."""
    if is_remote(path):
        import tensorflow as tf  # remote paths only

        with tf.io.gfile.GFile(path, "r") as handle:
            return handle.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@contextlib.contextmanager
def replaced_atomically(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary local path beside `path` to write; it replaces `path` when the block
    ends without an error and is removed otherwise, so readers see the old file or the
    whole new one, never a part. `suffix` ends the temporary name (writers that pick a
    format by name need it). The folder is made if missing."""
    folder = parent(path)
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", suffix=suffix,
                                     dir=folder)
    os.close(fd)
    try:
        yield temporary
        # mkstemp makes 0600; give the file the mode an ordinary new file gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path: str, text: str) -> None:
    """Writes UTF-8 `text` to a local or remote `path` atomically (see
    `replaced_atomically`; remotely, a temporary object renamed over it)."""
    if is_remote(path):
        import tensorflow as tf  # remote paths only

        tf.io.gfile.makedirs(parent(path))
        temporary = f"{path}.tmp-{os.getpid()}"
        with tf.io.gfile.GFile(temporary, "w") as handle:
            handle.write(text)
        tf.io.gfile.rename(temporary, path, overwrite=True)
        return
    with replaced_atomically(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
