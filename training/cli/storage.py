"""One line, not a traceback, when storage a training tool reads or writes cannot be reached.

A `gs://` path without network or credentials fails inside TensorFlow's file system with
a `tf.errors` error. Only the file-system kinds are turned into a usage error (exit
status 2): any other TensorFlow error is a defect and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import re
import sys
from typing import Iterator

from absl import app

# The tf.errors classes TensorFlow's file systems raise for a path they cannot reach or read
# (AbortedError: the cloud-storage client's retries all failed, e.g. behind a dead proxy).
_FILE_SYSTEM_ERRORS = ("NotFoundError", "PermissionDeniedError", "FailedPreconditionError",
                       "UnavailableError", "UnauthenticatedError", "AbortedError",
                       "DeadlineExceededError")


def _file_system_errors() -> tuple[type[Exception], ...]:
    # Not imported here: a tool that failed before TensorFlow was loaded raised none of these.
    tf = sys.modules.get("tensorflow")
    return tuple(getattr(tf.errors, name) for name in _FILE_SYSTEM_ERRORS) if tf else ()


@contextlib.contextmanager
def unreachable_storage_as_usage_error(*paths: str | None) -> Iterator[None]:
    """Turns a file-system `tf.errors` error inside the block into
    `app.UsageError("cannot reach/read <path>: <TensorFlow's first line>", exitcode=2)`.

    Args:
      paths: the tool's path flags (comma-separated lists allowed), named when
        TensorFlow's message names no URL.
    """
    try:
        yield
    except _file_system_errors() as error:
        from keras_squeezetime.training.tf_errors import tf_error_text

        # TensorFlow's context line names the object it failed on ("when reading gs://...").
        named = re.findall(r"\b(?!https?://)[a-z][a-z0-9+.-]*://[^\s'\"]+", str(error))
        given = [p.strip() for value in paths if value for p in value.split(",") if p.strip()]
        where = named[-1] if named else ", ".join(given) or "storage"
        raise app.UsageError(f"cannot reach/read {where}: {tf_error_text(error)}",
                             exitcode=2) from None
